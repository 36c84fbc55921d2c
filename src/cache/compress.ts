// NAR compression. zstd and xz are what Nix writes (xz by default, zstd with ?compression=zstd);
// none is a NAR as it is. Decompression uses the host's `zstd`/`xz` when they are there (fast,
// native) and pure decoders otherwise (fzstd in JavaScript, xz in WebAssembly), so no host tool is
// required to restore. There is no pure encoder among the dependencies: compressing needs the host
// tool. zstd is preferred when publishing because it decompresses about ten times faster than xz,
// and restores are what a cache is for.
import { spawn } from 'node:child_process';
import { accessSync, constants as C } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import xzDecompress from 'xz-decompress';
import { Decompress as ZstdDecompress } from 'fzstd';
import { UserError, EXIT } from '../util/errors.ts';

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
    throw new UserError('zstd compression needs the zstd program, and there is none on PATH', {
      exitCode: EXIT.usage,
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

/** fzstd takes input in pieces this big, so what one push produces stays small. */
const ZSTD_PIECE = 1 << 16;
/** the largest window the pure decoder accepts: zstd's own default limit when decompressing */
export const ZSTD_MAX_WINDOW = 1 << 27;

/** zstd in JavaScript: frames one after another (what `cat a.zst b.zst` makes) decode as one stream. */
async function* pureZstd(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let out: Uint8Array[] = [];
  const frames = new ZstdFrames();
  const d = new ZstdDecompress((chunk) => {
    if (chunk.length) out.push(chunk);
  });
  const push = (b: Uint8Array, final: boolean) => {
    try {
      // the frame walk sees every header before fzstd does, so a corrupt window size is refused
      // before fzstd would allocate it
      frames.scan(b);
      if (final) frames.end();
      d.push(b, final);
    } catch (e) {
      throw new Error(`the zstd stream is corrupt: ${(e as Error).message || String(e)}`);
    }
  };
  for await (const b of src) {
    for (let i = 0; i < b.length; i += ZSTD_PIECE) {
      push(b.subarray(i, i + ZSTD_PIECE), false);
      if (out.length) {
        const ready = out;
        out = [];
        yield* ready;
      }
    }
  }
  push(new Uint8Array(0), true);
  yield* out;
}

const DICT_ID_BYTES = [0, 1, 2, 4];
const MAX_BLOCK = 1 << 17;

/**
 * Walks the frame and block headers of a zstd stream (RFC 8878) without decoding: where frames
 * begin and end, that window sizes are sane, that no block overruns its limits and that the stream
 * does not stop inside a frame. fzstd trusts all of these; this makes corrupt input an error
 * rather than a huge allocation or a silent short output.
 */
export class ZstdFrames {
  private state: 'magic' | 'skipsize' | 'fhd' | 'header' | 'block' = 'magic';
  /** header bytes gathered for the current state */
  private buf: number[] = [];
  private need = 4;
  /** bytes to pass over (block contents, checksums, skippable frames) before the next header */
  private skip = 0;
  private frameCount = 0;
  private fhd = 0;
  private window = 0;
  private checksum = false;
  private afterSkip: 'magic' | 'block' = 'magic';

  scan(b: Uint8Array): void {
    let i = 0;
    while (i < b.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - i);
        this.skip -= n;
        i += n;
        if (this.skip === 0) this.enter(this.afterSkip);
        continue;
      }
      this.buf.push(b[i++]!);
      if (this.buf.length < this.need) continue;
      this.header();
    }
  }

  /** the stream is over: it must end between frames, after at least one */
  end(): void {
    if (this.frameCount === 0 && this.state === 'magic' && this.buf.length === 0 && this.skip === 0) throw new Error('it is empty');
    if (this.state !== 'magic' || this.buf.length > 0 || this.skip > 0) throw new Error('it ends inside a frame (truncated)');
  }

  private enter(state: ZstdFrames['state']) {
    this.state = state;
    this.buf = [];
    this.need = state === 'magic' || state === 'skipsize' ? 4 : state === 'fhd' ? 1 : state === 'block' ? 3 : this.need;
  }

  private header() {
    const h = this.buf;
    switch (this.state) {
      case 'magic': {
        const m = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
        if (m === 0xfd2fb528) {
          this.frameCount++;
          this.enter('fhd');
        } else if ((m & 0xfffffff0) === 0x184d2a50) {
          this.frameCount++;
          this.enter('skipsize');
        } else {
          throw new Error(`no zstd frame starts here (magic ${m.toString(16).padStart(8, '0')})`);
        }
        return;
      }
      case 'skipsize': {
        const n = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
        this.afterSkip = 'magic';
        this.enter('magic');
        this.skip = n;
        return;
      }
      case 'fhd': {
        const fhd = h[0]!;
        if (fhd & 8) throw new Error('a frame header has its reserved bit set');
        const single = (fhd >> 5) & 1;
        const fcsFlag = fhd >> 6;
        const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
        this.fhd = fhd;
        this.state = 'header';
        this.buf = [];
        this.need = (single ? 0 : 1) + DICT_ID_BYTES[fhd & 3]! + fcsBytes;
        if (this.need === 0) throw new Error('a frame header is impossible');
        return;
      }
      case 'header': {
        const fhd = this.fhd;
        const single = (fhd >> 5) & 1;
        const dictBytes = DICT_ID_BYTES[fhd & 3]!;
        if (dictBytes && h.slice(single ? 0 : 1, (single ? 0 : 1) + dictBytes).some((x) => x !== 0)) throw new Error('a frame needs a dictionary');
        if (single) {
          // the window is the content size
          let size = 0;
          const at = dictBytes;
          for (let k = h.length - 1; k >= at; k--) size = size * 256 + h[k]!;
          if ((fhd >> 6) === 1) size += 256;
          this.window = size;
        } else {
          const wd = h[0]!;
          const base = 2 ** (10 + (wd >> 3));
          this.window = base + (base / 8) * (wd & 7);
        }
        if (this.window > ZSTD_MAX_WINDOW) throw new Error(`a frame wants a ${this.window}-byte window, more than the ${ZSTD_MAX_WINDOW} allowed`);
        this.checksum = ((fhd >> 2) & 1) === 1;
        this.enter('block');
        return;
      }
      case 'block': {
        const bh = h[0]! | (h[1]! << 8) | (h[2]! << 16);
        const last = bh & 1;
        const type = (bh >> 1) & 3;
        const size = bh >>> 3;
        if (type === 3) throw new Error('a block has the reserved type');
        if (size > Math.min(MAX_BLOCK, Math.max(this.window, 1))) throw new Error(`a block of ${size} bytes is larger than its frame allows`);
        const content = type === 1 ? 1 : size;
        const next = last ? 'magic' : 'block';
        const trailer = last && this.checksum ? 4 : 0;
        this.enter(next);
        this.afterSkip = next;
        this.skip = content + trailer;
        return;
      }
    }
  }
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
