// src/bundle/: relonix bundle, one file that runs a closure natively on a Linux host with no Nix, no
// node, no namespaces and no FUSE. The closure is rewritten when the bundle is made for a run dir as
// long as its store dir (rundir), written as a tar (tar, payload, rewrite) behind a sh launcher
// (launcher) that unpacks it once and execs the entry (entry); installables says what goes in.
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { queryClosure } from '../cache/nixstore.ts';
import { activeNix, prefixEnvironment } from '../prefix/environment.ts';
import type { Layout } from '../prefix/layout.ts';
import { compareNames } from '../store/nar/framing.ts';
import { RelonixError } from '../util/errors.ts';
import { mib } from '../util/format.ts';
import { removeTree } from '../util/fs.ts';
import { processAlive } from '../util/proc.ts';
import { resolveEntry } from './entry.ts';
import { resolveInstallables } from './installables.ts';
import { defaultRunDir } from './rundir.ts';
import { writeBundle } from './write.ts';

export interface BundleOptions {
  layout: Layout;
  installables: string[];
  /** --file: installables that are not store paths are its attributes */
  file?: string;
  entry?: string;
  output: string;
  version: string;
  log: (msg: string) => void;
}

export interface BundleResult {
  output: string;
  storeDir: string;
  runDir: string;
  /** the entry, relative to the run dir */
  entry: string;
  paths: string[];
  closureBytes: number;
  fileBytes: number;
  payloadBytes: number;
  sha256: string;
  /** references to the store dir rewritten to the run dir */
  references: number;
  files: number;
  /** files with store references inside compressed data, which still name the store dir */
  compressed: { file: string; format: string; occurrences: number }[];
  /** why RELONIX_RUN_DIR cannot be used with this bundle, if it cannot */
  fixed?: string;
}

/** The output file's directory must exist and be writable, and the file must not be a directory. */
async function checkOutput(output: string): Promise<void> {
  const st = await fs.stat(output).catch(() => undefined);
  if (st?.isDirectory()) throw outputIsDirectory(output);
  // the bundle is renamed over what is there: a device, a pipe or a socket would be replaced by it
  if (st && !st.isFile()) {
    throw outputNotAFile(output, st.isFIFO() ? 'a named pipe' : st.isSocket() ? 'a socket' : 'a device');
  }
  const dir = path.dirname(output);
  const writable = await fs.access(dir, constants.W_OK | constants.X_OK).then(
    () => true,
    () => false,
  );
  if (!writable) throw outputDirNotWritable(output, dir);
}

/** -o of a directory. */
export function outputIsDirectory(output: string): RelonixError {
  return new RelonixError(`-o ${output} is a directory`, { kind: 'usage', hint: `name the file to write: -o ${path.join(output, 'NAME')}` });
}

/** -o of a pipe, a socket or a device (`what`), which the renamed bundle would replace. */
export function outputNotAFile(output: string, what: string): RelonixError {
  return new RelonixError(`-o ${output} is ${what}, not a file: the bundle would replace it`, {
    kind: 'usage',
    hint: 'name a file to write, e.g. -o ./NAME.run (a bundle is renamed into place, never streamed)',
  });
}

/** -o in a directory that is missing or this user cannot write in. */
export function outputDirNotWritable(output: string, dir: string): RelonixError {
  return new RelonixError(`-o ${output}: ${dir} is not a directory this user can write in`, { kind: 'usage', hint: 'create it, or write elsewhere' });
}

/** A fresh directory for the GC roots of this run, after removing those of runs that were killed. */
async function rootsDir(l: Layout): Promise<string> {
  const dir = path.join(l.relonixDir, 'bundle');
  await fs.mkdir(dir, { recursive: true });
  for (const n of await fs.readdir(dir)) {
    const pid = /^roots-(\d+)-/.exec(n)?.[1];
    // one this user cannot remove is not in its way
    if (pid && !processAlive(Number(pid))) await removeTree(path.join(dir, n)).catch(() => undefined);
  }
  return fs.mkdtemp(path.join(dir, `roots-${process.pid}-`));
}

export async function makeBundle(o: BundleOptions): Promise<BundleResult> {
  const l = o.layout;
  const output = path.resolve(o.output);
  await checkOutput(output);
  const { nix } = await activeNix(l);
  const env = await prefixEnvironment(l);
  const roots = await rootsDir(l);
  try {
    const r = await resolveInstallables({ layout: l, nix, env, file: o.file, rootsDir: roots, log: o.log }, o.installables);
    const records = await queryClosure({ layout: l, nix, env }, r.roots);
    const paths = records.map((x) => x.path).sort(compareNames);
    const entry = await resolveEntry({ storeDir: l.storeDir, root: r.roots[0]!, closure: new Set(paths), entry: o.entry ?? r.entry });
    // the closure names the run dir: bundles of one closure share theirs, other closures get others
    const runDir = defaultRunDir(l.storeDir, [l.storeDir, ...paths].join('\n'));
    const closureBytes = records.reduce((n, x) => n + x.narSize, 0);
    o.log(`bundling ${paths.length} store paths (${mib(closureBytes)}) built for ${l.storeDir}, rewritten for the run dir ${runDir}`);
    const w = await writeBundle({
      output,
      storeDir: l.storeDir,
      runDir,
      paths,
      entry,
      closureBytes,
      version: o.version,
      onPath: (done, total) => (done === total || done % 25 === 0 ? o.log(`  ${done}/${total} store paths`) : undefined),
    });
    return {
      output,
      storeDir: l.storeDir,
      runDir,
      entry,
      paths,
      closureBytes,
      fileBytes: w.fileBytes,
      payloadBytes: w.payloadBytes,
      sha256: w.sha256,
      references: w.stats.references,
      files: w.stats.files,
      compressed: w.stats.compressed,
      ...(w.stats.fixed ? { fixed: w.stats.fixed } : {}),
    };
  } finally {
    await removeTree(roots);
  }
}
