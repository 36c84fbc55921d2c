// Stage "unpack": a release .tar.xz into the staging directory, refusing anything that could write
// outside it. The tarball has been checksummed, but the checksum only proves it is the file the URL
// named — a mirror or a hand-made --url can still serve a hostile archive, so every entry is checked
// before it touches the disk and nothing is ever written through a symlink.
//
// Extraction goes into `<dest>.partial` and is renamed to `<dest>` only when complete, so a kill
// mid-way leaves no half tree that a re-run could mistake for a finished one.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeOffThread } from '../codec/decode-thread.ts';
import { decompressXz, xzDecoder } from '../codec/xz.ts';
import type { StreamRelocation } from '../store/relocate-stream.ts';
import { errorMessage, isNoSpace, noSpace, RelonixError } from '../util/errors.ts';
import { removeTree } from '../util/fs.ts';
import type { BytesProgress } from '../util/progress.ts';
import { checkAllLinks, Refusal } from './archive-checks.ts';
import { Extractor } from './extractor.ts';
import { TarReader } from './tar-reader.ts';
import { notAReleaseTarball } from './tarball.ts';

export interface UnpackOptions {
  /** the tarball (read from here unless `arriving` is given; named in errors either way) */
  tarball: string;
  /** the tarball's bytes as its download brings them, with its size when known */
  arriving?: { bytes: AsyncIterable<Buffer>; size?: number };
  dest: string;
  /** compressed bytes read of the tarball's, and entries written */
  onProgress?: (p: BytesProgress & { total: number; entries: number }) => void;
  /** decompress with the bundled WebAssembly xz even when `xz` is on PATH (also: RELONIX_NO_HOST_XZ=1) */
  noHostXz?: boolean;
  /** relocate the files of store paths as they are unpacked (the staging tree then holds them relocated) */
  relocation?: StreamRelocation;
  /** what the unpacked tree is expected to take, said when the disk fills up */
  needBytes?: number;
}

/** The tarball's bytes as they are read, counted by `onRead`. */
async function* counted(opts: UnpackOptions, onRead: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of opts.arriving?.bytes ?? createReadStream(opts.tarball, { highWaterMark: 1 << 20 })) {
    onRead((chunk as Buffer).length);
    yield chunk as Buffer;
  }
}

async function findRoot(dir: string): Promise<string> {
  const names = (await fs.readdir(dir)).filter((n) => !n.startsWith('.'));
  if (names.length !== 1 || !(await fs.lstat(path.join(dir, names[0]!))).isDirectory()) {
    throw notAReleaseTarball(`the tarball should hold exactly one top directory (nix-<version>-<system>/), found: ${names.join(', ') || 'nothing'}`);
  }
  return path.join(dir, names[0]!);
}

function unpackError(tarball: string, e: unknown): unknown {
  if (e instanceof Refusal) return unsafeTarball(tarball, e.message);
  if (e instanceof RelonixError) return e;
  return damagedTarball(tarball, e);
}

/** A tarball with an entry relonix will not write (outside the tree, a device, a link out …). */
export function unsafeTarball(tarball: string, why: string): RelonixError {
  return new RelonixError(`refusing to unpack ${tarball}: ${why}`, {
    kind: 'integrity',
    hint: 'this is not a well-formed Nix release tarball; fetch the official one (releases.nixos.org) and check its sha256',
  });
}

/** A tarball that does not decompress or read as a tar: damaged, or another kind of file. */
export function damagedTarball(tarball: string, cause: unknown): RelonixError {
  return new RelonixError(`could not unpack ${tarball}: ${errorMessage(cause)}`, {
    kind: 'integrity',
    hint: 'the file is damaged or not a .tar.xz; delete it and download it again',
    cause,
  });
}

/**
 * A full disk is no damage: it says where, what is free now that the partial tree is gone, and what
 * the tree needs: what the entries read so far declare, taken for the whole at the rate the
 * tarball was read, or the caller's estimate when that is more.
 */
async function fullDisk(dest: string, opts: UnpackOptions, declared: number, fraction: number, cause: unknown): Promise<RelonixError> {
  const where = path.dirname(dest);
  const st = await fs.statfs(where);
  const need = Math.max(opts.needBytes ?? 0, fraction > 0 ? Math.ceil(declared / fraction) : declared);
  return noSpace(where, Number(st.bavail) * Number(st.bsize), need, cause);
}

/**
 * The tarball through the host's xz, fed and drained on this thread. xz's own threads decode a
 * tarball's blocks meanwhile (one per 24 MiB in a tarball xz made with threads), so a pipe waiting
 * while this thread writes a big file costs little; a decode thread in between cost 0.3-0.4 s more
 * CPU in a bootstrap of the 2.8 fixture (3.7 s against 4.0-4.1 s, in both one-block and
 * four-block tarballs), and started xz 0.1-0.2 s later. `read.sha256`: of every byte fed, once all were.
 */
function hostDecoded(raw: AsyncIterable<Buffer>, read: { sha256?: string }): AsyncIterable<Uint8Array> {
  const h = createHash('sha256');
  async function* fed(): AsyncGenerator<Buffer> {
    for await (const b of raw) {
      h.update(b);
      yield b;
    }
    read.sha256 = h.digest('hex');
  }
  // on every core: the unpack's own work does not fill one (the 2.8 fixture unpacked in 1.44 s with
  // -T2 against 1.66 s with -T1 on two cores); a one-block tarball decodes on one thread all the same
  return decompressXz(fed(), { threads: os.availableParallelism() });
}

/** Decompresses and extracts the tarball into the Extractor's tree; throws the first failure. */
async function extract(opts: UnpackOptions, ex: Extractor, read: { sha256?: string }, onRead: (n: number) => void): Promise<void> {
  const raw = counted(opts, onRead);
  // WebAssembly, without a host xz: on a thread of its own, where it overlaps the unpacking instead
  // of taking turns with it; each batch it sends ends where a tar entry ends
  const bytes =
    xzDecoder({ noHost: opts.noHostXz }) === 'xz'
      ? hostDecoded(raw, read)
      : decodeOffThread(raw, 'xz', {
          tar: true,
          onInputSha256: (hex) => {
            read.sha256 = hex;
          },
        });
  const reader = new TarReader((h) => ex.apply(h));
  try {
    // each chunk is written out before the next is pulled; a throw leaves the loop, which stops the decompressor
    for await (const chunk of bytes) reader.write(chunk);
    reader.end();
    for (const close of ex.pending) close(); // every file has ended by now; this only asserts it
  } catch (failure) {
    for (const close of ex.pending) {
      try {
        close();
      } catch {
        // already closed
      }
    }
    throw failure;
  }
}

export interface Unpacked {
  root: string;
  via?: 'xz' | 'wasm' | 'existing';
  /** sha256 (hex) of the tarball's bytes as this unpack read them; none for an existing tree */
  sha256?: string;
}

export async function unpackTarball(opts: UnpackOptions): Promise<Unpacked> {
  const dest = path.resolve(opts.dest);
  try {
    if ((await fs.lstat(dest)).isDirectory()) return { root: await findRoot(dest), via: 'existing' };
  } catch (e) {
    if (e instanceof RelonixError) throw e;
  }
  const partial = `${dest}.partial`;
  await removeTree(partial); // a kill mid-way left it: start that unpack over
  await fs.mkdir(partial, { recursive: true, mode: 0o755 });
  const total = opts.arriving ? (opts.arriving.size ?? 0) : (await fs.stat(opts.tarball)).size;
  const ex = new Extractor(partial, opts.relocation);
  const read: { sha256?: string } = {};
  let received = 0;
  const report = () => opts.onProgress?.({ received, total, entries: ex.entries });
  let root: string;
  try {
    await extract(opts, ex, read, (n) => {
      received += n;
      report();
    });
    checkAllLinks(ex.links);
    if (ex.entries === 0) throw damagedTarball(opts.tarball, 'it holds no files');
    ex.sealStoreDirs();
    root = await findRoot(partial);
  } catch (e) {
    await removeTree(partial);
    if (isNoSpace(e)) throw await fullDisk(dest, opts, ex.declared, received / total, e);
    throw unpackError(opts.tarball, e);
  }
  await fs.rename(partial, dest);
  report();
  return { root: path.join(dest, path.basename(root)), via: xzDecoder({ noHost: opts.noHostXz }), sha256: read.sha256 };
}
