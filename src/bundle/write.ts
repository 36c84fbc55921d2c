// Writing the bundle file: the payload (the closure's tar, gzip'd) goes in at the launcher's offset
// as it is made, hashed on the way; the launcher, which names that hash, goes in front last. All of
// it through a temporary beside the file, renamed into place: a killed run leaves no half bundle.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { pipeline, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { mib } from '../util/format.ts';
import { clearStaleTemps, removeTree, tempSibling } from '../util/fs.ts';
import { nixSystem } from '../util/system.ts';
import { type LauncherValues, launcherSize, renderLauncher } from './launcher.ts';
import { type PayloadStats, tarClosure } from './payload.ts';

export interface WriteInput {
  output: string;
  storeDir: string;
  runDir: string;
  /** every store path of the closure */
  paths: string[];
  /** the entry, relative to the run dir */
  entry: string;
  /** the closure's size, for --bundle-info */
  closureBytes: number;
  version: string;
  onPath?: (done: number, total: number) => void;
}

export interface Written {
  sha256: string;
  /** bytes of the payload, and of the whole file */
  payloadBytes: number;
  fileBytes: number;
  stats: PayloadStats;
}

/** gzip's best: a bundle is made once and copied and unpacked many times. */
const LEVEL = 9;
/** room for the reason a bundle cannot move, in the launcher */
const MAX_FIXED = 200;

export async function writeBundle(o: WriteInput): Promise<Written> {
  const values: LauncherValues = {
    sha256: '',
    name: o.entry.split('/').pop() || o.entry,
    runDir: o.runDir,
    entry: o.entry,
    storeDir: o.storeDir,
    closure: `${o.paths.length} store path${o.paths.length === 1 ? '' : 's'}, ${mib(o.closureBytes)}`,
    system: nixSystem(),
    payload: '',
    paths: o.paths.map((p) => p.slice(o.storeDir.length + 1)),
    version: o.version,
  };
  const skip = launcherSize({ ...values, fixed: 'x'.repeat(MAX_FIXED) });
  // what a run killed before its rename left: a bundle's worth of bytes each
  await clearStaleTemps(o.output).catch(() => undefined);
  const tmp = tempSibling(o.output);
  const fh = await fs.open(tmp, 'wx', 0o600);
  try {
    const { chunks, stats } = tarClosure({ storeDir: o.storeDir, runDir: o.runDir, paths: o.paths, onPath: o.onPath });
    const gz = zlib.createGzip({ level: LEVEL });
    pipeline(Readable.from(chunks), gz, () => undefined);
    const hash = createHash('sha256');
    let at = skip;
    for await (const b of gz as AsyncIterable<Buffer>) {
      hash.update(b);
      await fh.write(b, 0, b.length, at);
      at += b.length;
    }
    const sha256 = hash.digest('hex');
    const payloadBytes = at - skip;
    const fixed = stats.fixed && `this bundle unpacks only into its own run dir: ${stats.fixed}`.slice(0, MAX_FIXED);
    const head = renderLauncher({ ...values, sha256, payload: `${mib(payloadBytes)}, ${payloadBytes} bytes`, ...(fixed ? { fixed } : {}) }, skip);
    await fh.write(head, 0, head.length, 0);
    await fh.sync();
    await fh.close();
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, o.output);
    return { sha256, payloadBytes, fileBytes: at, stats };
  } catch (e) {
    await fh.close().catch(() => undefined);
    await removeTree(tmp);
    throw e;
  }
}
