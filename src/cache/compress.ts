// NAR compression. zstd and xz are what Nix writes (xz by default, zstd with ?compression=zstd);
// none is a NAR as it is. Decompression uses the host's `zstd`/`xz` when they are there (fast,
// native) and pure decoders otherwise (fzstd in JavaScript, xz in WebAssembly), so no host tool is
// required to restore. There is no pure encoder among the dependencies: compressing needs the host
// tool. zstd is preferred when publishing because it decompresses about five times faster than xz
// and restores are what a cache is for.
import { spawn } from 'node:child_process';
import { accessSync, constants as C } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import xzDecompress from 'xz-decompress';
import { pureZstd } from './zstd.ts';
import { RelonixError } from '../util/errors.ts';

// a CommonJS package: its classes come off the default export
const { XzReadableStream } = xzDecompress;

export type Compression = 'zstd' | 'xz' | 'none';
/** what `relonix publish --compression` takes: a compression, or `auto` to pick the best the host can write */
export type CompressionChoice = Compression | 'auto';

/**
 * zstd level for publishing. Measured on the fixture closure (48 NARs, 77.1 MB, one thread each):
 * -3 gives 29.0 MB in 0.8 s, -9 26.3 MB in 2.3 s, -12 26.2 MB in 4.2 s, -19 23.2 MB in 29 s
 * (xz -6: 20.7 MB in 32 s). Decompressing the zstd ones takes 0.25-0.32 s, the xz one 1.4 s.
 * Past -9, each level costs much more time than it saves bytes.
 */
export const ZSTD_LEVEL = 9;
/** xz level for publishing (xz's own default, and what Nix writes) */
export const XZ_LEVEL = 6;

const found = new Map<string, string | null>();

function onPath(name: string): string | null {
  const dirs = process.env.PATH ?? '/usr/bin:/bin';
  const memo = `${name}\0${dirs}`;
  const known = found.get(memo);
  if (known !== undefined) return known;
  let hit: string | null = null;
  for (const dir of dirs.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, C.X_OK);
      hit = p;
      break;
    } catch {
      // not here
    }
  }
  found.set(memo, hit);
  return hit;
}

/** The host's xz, or null. RELONIX_NO_HOST_XZ=1 hides it (tests of the pure path). */
export function hostXz(): string | null {
  if (process.env.RELONIX_NO_HOST_XZ === '1') return null;
  return onPath('xz');
}

/** The host's zstd, or null. RELONIX_NO_HOST_ZSTD=1 hides it (tests of the pure path). */
export function hostZstd(): string | null {
  if (process.env.RELONIX_NO_HOST_ZSTD === '1') return null;
  return onPath('zstd');
}

/** The host program that decompresses `c`, or null when there is none (or `c` needs none). */
export function hostDecompressor(c: string): string | null {
  return c === 'xz' ? hostXz() : c === 'zstd' ? hostZstd() : null;
}

export function narExtension(c: string): string {
  return c === 'xz' ? '.nar.xz' : c === 'zstd' ? '.nar.zst' : '.nar';
}

export function checkCompression(c: string): Compression {
  if (c === 'zstd' || c === 'xz' || c === 'none') return c;
  throw new Error(`NAR compression "${c}" is not supported by relonix (it reads and writes zstd, xz and none)`);
}

/** `auto` or a compression, as `relonix publish --compression` takes it. */
export function checkCompressionChoice(c: string): CompressionChoice {
  if (c === 'auto') return c;
  return checkCompression(c);
}

/**
 * The compression a publish will write. `auto` is zstd when the host has zstd, else xz when it has
 * xz, else none. An explicit zstd without a host zstd is refused; an explicit xz without a host xz
 * falls back to none with a notice, as it always has.
 */
export function resolveCompression(want: CompressionChoice, log: (msg: string) => void = () => undefined): Compression {
  if (want === 'auto') return hostZstd() ? 'zstd' : hostXz() ? 'xz' : 'none';
  if (want === 'zstd' && !hostZstd()) {
    throw new RelonixError('zstd compression needs the zstd program, and there is none on PATH', {
      kind: 'usage',
      hint: 'install zstd (apt-get install zstd, dnf install zstd, apk add zstd), or publish with --compression xz or --compression none',
    });
  }
  if (want === 'xz' && !hostXz()) {
    log('notice: no xz on this host, so NARs are published uncompressed (Compression: none); install xz-utils for smaller caches');
    return 'none';
  }
  return want;
}

/** Compresses a stream with the host tool (resolveCompression has checked it is there). */
export function compressStream(src: AsyncIterable<Uint8Array>, c: Compression): AsyncIterable<Uint8Array> {
  if (c === 'none') return src;
  const bin = c === 'zstd' ? hostZstd() : hostXz();
  if (!bin) throw new Error(`${c} compression needs the host ${c}`);
  const level = c === 'zstd' ? ZSTD_LEVEL : XZ_LEVEL;
  return throughChild(bin, ['-c', '-q', '-T1', `-${level}`], src, (detail) => `${c} failed while compressing: ${detail}`);
}

/** Decompresses a stream of compressed bytes. */
export function decompress(src: AsyncIterable<Uint8Array>, c: string): AsyncIterable<Uint8Array> {
  if (c === 'none') return src;
  if (c === 'xz') {
    const xz = hostXz();
    if (xz) return throughChild(xz, ['-d', '-c', '-q'], src, (detail) => `the xz stream is corrupt: ${detail}`);
    const web = new XzReadableStream(Readable.toWeb(Readable.from(src)) as ReadableStream<Uint8Array>);
    return Readable.fromWeb(web as import('node:stream/web').ReadableStream<Uint8Array>);
  }
  if (c === 'zstd') {
    const zstd = hostZstd();
    if (zstd) return throughChild(zstd, ['-d', '-c', '-q'], src, (detail) => `the zstd stream is corrupt: ${detail}`);
    return pureZstd(src);
  }
  throw new Error(`NAR compression "${c}" is not supported by relonix (it reads zstd, xz and none)`);
}

/** Runs bytes through a filter program (xz, zstd), streaming both ways. */
async function* throughChild(bin: string, args: string[], src: AsyncIterable<Uint8Array>, failure: (detail: string) => string): AsyncGenerator<Uint8Array> {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const name = path.basename(bin);
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  exited.catch(() => undefined);
  const stdin = child.stdin;
  stdin.on('error', () => undefined);
  // a writable that went away (the program exited early) never emits drain: wait for close too
  const writable = () =>
    new Promise<void>((r) => {
      const done = () => {
        stdin.off('drain', done);
        stdin.off('close', done);
        r();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const b of src) {
        if (stdin.destroyed) break;
        if (!stdin.write(b)) await writable();
      }
    } catch (e) {
      feedError = e;
    } finally {
      stdin.end();
    }
  })();
  try {
    for await (const b of child.stdout) yield b as Buffer;
    await feeding;
    if (feedError) throw feedError;
    const code = await exited;
    if (code !== 0) throw new Error(failure(Buffer.concat(err).toString().trim() || `${name} exited with ${code}`));
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
}
