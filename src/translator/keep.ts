// The translator's file cache: a binary cache directory for the prefix's store dir, where every
// translation is kept, its NAR first and its narinfo last. Nothing is synced to disk: what is kept
// is checked when it is used again (the narinfo reads, describes its path, and its NAR is there with
// the size it gives; Nix checks the NAR's hash itself), and what a crash left unusable is dropped
// and translated again. A NAR is staged beside its place and renamed there once its source checked
// out, so a NAR in the cache is always whole.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type SecretKey, signNarInfo } from '../cache/keys.ts';
import { formatNarInfo, narInfoKey, parseNarInfo } from '../cache/narinfo.ts';
import { type PublishItem, stagedNarInfo } from '../cache/publish.ts';
import { type KnownHash, knownHash, type StagedNar } from '../cache/staged-nar.ts';
import { clearTemps, tempSibling, writeFileAtomic } from '../util/fs.ts';

/** A kept NAR's key in the cache, its file name captured: `nar/<FileHash, nix-base32>.nar`. */
export const KEPT_NAR = String.raw`nar\/([0-9abcdfghijklmnpqrsvwxyz]{52}\.nar)`;

export class FileCache {
  private readonly nars: string;

  constructor(
    readonly dir: string,
    private readonly key: SecretKey,
  ) {
    this.nars = path.join(dir, 'nar');
  }

  /** Clears what a killed translator was staging; only one runs per prefix, and it calls this first. */
  async open(): Promise<void> {
    await fs.mkdir(this.nars, { recursive: true });
    await clearTemps(this.nars);
  }

  narFile(name: string): string {
    return path.join(this.nars, name);
  }

  /**
   * A kept narinfo as Nix is given it: its NAR named by a file:// URL, which Nix's HTTP store fetches
   * as it is (an absolute URL is not taken as relative to the cache's), so the bytes go from the disk
   * to Nix without passing through this server's one thread (bench:substitute, 156 MB of NARs: the
   * second install 0.54-0.59 s → 0.33-0.42 s). What is kept stays relative: the cache can be copied.
   */
  served(text: Buffer): Buffer {
    const s = text.toString('utf8');
    const local = s.replace(new RegExp(`^URL: ${KEPT_NAR}$`, 'm'), (_, name: string) => `URL: ${pathToFileURL(this.narFile(name)).href}`);
    return local === s ? text : Buffer.from(local);
  }

  /** The kept narinfo of the path with hash part `hash`, when it and its NAR are whole; a broken one is dropped. */
  async narinfo(hash: string): Promise<Buffer | undefined> {
    const file = path.join(this.dir, `${hash}.narinfo`);
    const text = await fs.readFile(file).catch(() => undefined);
    if (!text) return undefined;
    try {
      const ni = parseNarInfo(text.toString('utf8'), file);
      const st = await fs.stat(path.join(this.dir, ni.url));
      if (narInfoKey(ni.storePath) === `${hash}.narinfo` && st.size === ni.fileSize) return text;
    } catch {
      // unreadable, or its NAR is gone: translated again below
    }
    await fs.rm(file, { force: true });
    return undefined;
  }

  /** Where to stage a NAR, beside its place (the directory is made again each time: a user who cleared the cache to free space leaves a server that still works). */
  async stagingFile(): Promise<string> {
    await fs.mkdir(this.nars, { recursive: true });
    return tempSibling(path.join(this.nars, 'staging'));
  }

  /** Keeps a staged NAR, whose source checked out, under its name, then its signed narinfo. */
  async commit(
    it: Pick<PublishItem, 'path' | 'references' | 'deriver'>,
    nar: { narHash: Uint8Array; narSize: number },
    file: string,
    ca?: string,
  ): Promise<void> {
    const narHash = Buffer.from(nar.narHash);
    // kept uncompressed: the file's hash and size are the NAR's
    const ni = stagedNarInfo(it, { narHash, narSize: nar.narSize, fileHash: narHash, fileSize: nar.narSize }, 'none', ca);
    await fs.rename(file, path.join(this.dir, ni.url));
    const text = formatNarInfo({ ...ni, sigs: [signNarInfo(ni, this.key)] });
    await writeFileAtomic(path.join(this.dir, narInfoKey(it.path)), text, 0o644, { storeContent: true });
  }
}

/** Bytes gathered before a write: a NAR comes as many small chunks, and each write is a trip to the thread pool. */
const WRITE_BYTES = 1 << 20;

/**
 * A NAR kept as it is (uncompressed, so its file hash is its NAR hash): written to `file` (which must
 * not exist) in big writes, hashed on the way unless what made it hashed it (`known`).
 */
export async function writeNar(nar: AsyncIterable<Uint8Array>, file: string, known?: KnownHash): Promise<StagedNar> {
  const fh = await fs.open(file, 'wx', 0o644);
  const hash = createHash('sha256');
  let size = 0;
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  try {
    for await (const b of nar) {
      if (!known) hash.update(b);
      size += b.length;
      held.push(b);
      heldBytes += b.length;
      if (heldBytes < WRITE_BYTES) continue;
      await writeAll(fh, held);
      held = [];
      heldBytes = 0;
    }
    await writeAll(fh, held);
  } finally {
    await fh.close();
  }
  const { narHash, narSize } = known ? knownHash(known) : { narHash: hash.digest(), narSize: size };
  return { narHash, narSize, fileHash: narHash, fileSize: size };
}

async function writeAll(fh: fs.FileHandle, bufs: Uint8Array[]): Promise<void> {
  const rest = bufs.filter((b) => b.length);
  while (rest.length) {
    const { bytesWritten } = await fh.writev(rest);
    let n = bytesWritten;
    while (rest.length && n >= rest[0]!.length) n -= rest.shift()!.length;
    if (n) rest[0] = rest[0]!.subarray(n);
  }
}
