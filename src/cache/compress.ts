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

/**
 * zstd in JavaScript: frames one after another (what `cat a.zst b.zst` makes) decode as one stream,
 * and each frame's content checksum is checked, as the zstd program does.
 */
async function* pureZstd(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let out: Uint8Array[] = [];
  const frames = new ZstdFrames();
  const sum = new Xxh64();
  const d = new ZstdDecompress((chunk) => {
    if (!chunk.length) return;
    sum.update(chunk);
    out.push(chunk);
  });
  const corrupt = (e: unknown) => new Error(`the zstd stream is corrupt: ${(e as Error).message || String(e)}`);
  const push = (piece: Uint8Array) => {
    try {
      for (let i = 0; i < piece.length; ) {
        // the frame walk sees every header before fzstd does, so a corrupt window size is refused
        // before fzstd would allocate it; fzstd gets each frame up to its end and no further, so
        // what it has put out by then is exactly that frame's content
        const j = frames.scan(piece, i);
        const end = frames.takeFrameEnd();
        d.push(piece.subarray(i, j), end !== undefined);
        if (end) {
          if (end.checksum !== undefined && sum.digestLow32() !== end.checksum) throw new Error('a frame fails its content checksum');
          sum.reset();
        }
        i = j;
      }
    } catch (e) {
      throw corrupt(e);
    }
  };
  for await (const b of src) {
    for (let i = 0; i < b.length; i += ZSTD_PIECE) {
      push(b.subarray(i, i + ZSTD_PIECE));
      if (out.length) {
        const ready = out;
        out = [];
        yield* ready;
      }
    }
  }
  try {
    frames.end();
    d.push(new Uint8Array(0), true);
  } catch (e) {
    throw corrupt(e);
  }
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
  private state: 'magic' | 'skipsize' | 'fhd' | 'header' | 'block' | 'checksum' = 'magic';
  /** header bytes gathered for the current state */
  private buf: number[] = [];
  private need = 4;
  /** bytes to pass over (block contents, skippable frames) before the next header */
  private skip = 0;
  private afterSkip: 'magic' | 'block' | 'checksum' | 'end' = 'magic';
  private frameCount = 0;
  private fhd = 0;
  private window = 0;
  private checksum = false;
  private frameEnd: { checksum: number | undefined } | undefined;

  /**
   * Walks b from `start`. Returns where a zstd frame ended in b (then takeFrameEnd() says so), or
   * b.length. Throws on anything a zstd stream cannot be.
   */
  scan(b: Uint8Array, start = 0): number {
    let i = start;
    while (i < b.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - i);
        this.skip -= n;
        i += n;
        if (this.skip === 0) {
          if (this.afterSkip === 'end') {
            this.finishFrame(undefined);
            return i;
          }
          this.enter(this.afterSkip);
        }
        continue;
      }
      this.buf.push(b[i++]!);
      if (this.buf.length < this.need) continue;
      if (this.header()) return i;
    }
    return i;
  }

  /** the frame that scan() saw end, once */
  takeFrameEnd(): { checksum: number | undefined } | undefined {
    const e = this.frameEnd;
    this.frameEnd = undefined;
    return e;
  }

  /** the stream is over: it must end between frames, after at least one */
  end(): void {
    const between = this.state === 'magic' && this.buf.length === 0 && this.skip === 0;
    if (this.frameCount === 0 && between) throw new Error('it is empty');
    if (!between) throw new Error('it ends inside a frame (truncated)');
  }

  private enter(state: ZstdFrames['state']) {
    this.state = state;
    this.buf = [];
    this.need = state === 'fhd' ? 1 : state === 'block' ? 3 : 4;
  }

  private finishFrame(checksum: number | undefined) {
    this.frameEnd = { checksum };
    this.enter('magic');
  }

  /** a header is complete; true when it ended a frame */
  private header(): boolean {
    const h = this.buf;
    const u32 = () => (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
    switch (this.state) {
      case 'magic': {
        const m = u32();
        if (m === 0xfd2fb528) {
          this.frameCount++;
          this.enter('fhd');
        } else if ((m & 0xfffffff0) === 0x184d2a50) {
          this.frameCount++;
          this.enter('skipsize');
        } else {
          throw new Error(`no zstd frame starts here (magic ${m.toString(16).padStart(8, '0')})`);
        }
        return false;
      }
      case 'skipsize': {
        const n = u32();
        this.enter('magic');
        this.afterSkip = 'magic';
        this.skip = n;
        return false;
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
        return false;
      }
      case 'header': {
        const fhd = this.fhd;
        const single = (fhd >> 5) & 1;
        const dictBytes = DICT_ID_BYTES[fhd & 3]!;
        const dictAt = single ? 0 : 1;
        if (h.slice(dictAt, dictAt + dictBytes).some((x) => x !== 0)) throw new Error('a frame needs a dictionary');
        if (single) {
          // the window is the content size
          let size = 0;
          for (let k = h.length - 1; k >= dictAt + dictBytes; k--) size = size * 256 + h[k]!;
          if (fhd >> 6 === 1) size += 256;
          this.window = size;
        } else {
          const wd = h[0]!;
          const base = 2 ** (10 + (wd >> 3));
          this.window = base + (base / 8) * (wd & 7);
        }
        if (this.window > ZSTD_MAX_WINDOW) throw new Error(`a frame wants a ${this.window}-byte window, more than the ${ZSTD_MAX_WINDOW} allowed`);
        this.checksum = ((fhd >> 2) & 1) === 1;
        this.enter('block');
        return false;
      }
      case 'block': {
        const bh = h[0]! | (h[1]! << 8) | (h[2]! << 16);
        const last = bh & 1;
        const type = (bh >> 1) & 3;
        const size = bh >>> 3;
        if (type === 3) throw new Error('a block has the reserved type');
        if (size > Math.min(MAX_BLOCK, Math.max(this.window, 1))) throw new Error(`a block of ${size} bytes is larger than its frame allows`);
        const content = type === 1 ? 1 : size;
        const next = !last ? 'block' : this.checksum ? 'checksum' : 'end';
        if (content === 0 && next === 'end') {
          this.finishFrame(undefined);
          return true;
        }
        this.enter(next === 'end' ? 'block' : next);
        this.afterSkip = next;
        this.skip = content;
        return false;
      }
      case 'checksum':
        this.finishFrame(u32());
        return true;
    }
  }
}

// XXH64 (seed 0), which zstd frames carry the low half of as their content checksum. In 32-bit
// halves: BigInt would be several times slower.
let rh = 0;
let rl = 0;

/** (ah:al) * (bh:bl) mod 2^64 → rh:rl */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  rl = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  rh = (carry + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** (ah:al) + (bh:bl) mod 2^64 → rh:rl */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  rl = lo >>> 0;
  rh = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** rotate (h:l) left by r (0 < r < 32) → rh:rl */
function rotl(h: number, l: number, r: number): void {
  rh = ((h << r) | (l >>> (32 - r))) >>> 0;
  rl = ((l << r) | (h >>> (32 - r))) >>> 0;
}

const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

export class Xxh64 {
  // four accumulators, hi and lo
  private v = new Uint32Array(8);
  private buf = new Uint8Array(32);
  private held = 0;
  private total = 0;
  constructor() {
    this.reset();
  }
  reset(): void {
    const v = this.v;
    add(P1H, P1L, P2H, P2L);
    v[0] = rh; v[1] = rl;
    v[2] = P2H; v[3] = P2L;
    v[4] = 0; v[5] = 0;
    // 0 - P1
    add(~P1H >>> 0, ~P1L >>> 0, 0, 1);
    v[6] = rh; v[7] = rl;
    this.held = 0;
    this.total = 0;
  }
  private stripe(d: Uint8Array, at: number): void {
    const v = this.v;
    for (let k = 0; k < 4; k++) {
      const o = at + k * 8;
      const ll = (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) >>> 0;
      const lh = (d[o + 4]! | (d[o + 5]! << 8) | (d[o + 6]! << 16) | (d[o + 7]! << 24)) >>> 0;
      mul(lh, ll, P2H, P2L);
      add(v[2 * k]!, v[2 * k + 1]!, rh, rl);
      // rotl 31
      rotl(rh, rl, 31);
      mul(rh, rl, P1H, P1L);
      v[2 * k] = rh;
      v[2 * k + 1] = rl;
    }
  }
  update(d: Uint8Array): void {
    let i = 0;
    this.total += d.length;
    if (this.held) {
      const n = Math.min(32 - this.held, d.length);
      this.buf.set(d.subarray(0, n), this.held);
      this.held += n;
      i = n;
      if (this.held < 32) return;
      this.stripe(this.buf, 0);
      this.held = 0;
    }
    for (; i + 32 <= d.length; i += 32) this.stripe(d, i);
    if (i < d.length) {
      this.buf.set(d.subarray(i), 0);
      this.held = d.length - i;
    }
  }
  /** the low 32 bits of the digest (what a zstd frame stores) */
  digestLow32(): number {
    return this.digest()[1];
  }
  digest(): [number, number] {
    const v = this.v;
    let hh: number;
    let hl: number;
    if (this.total >= 32) {
      rotl(v[0]!, v[1]!, 1); let ah = rh, al = rl;
      rotl(v[2]!, v[3]!, 7); add(ah, al, rh, rl); ah = rh; al = rl;
      rotl(v[4]!, v[5]!, 12); add(ah, al, rh, rl); ah = rh; al = rl;
      rotl(v[6]!, v[7]!, 18); add(ah, al, rh, rl); ah = rh; al = rl;
      for (let k = 0; k < 4; k++) {
        // mergeRound: acc ^= round(0, v); acc = acc * P1 + P4
        mul(v[2 * k]!, v[2 * k + 1]!, P2H, P2L);
        rotl(rh, rl, 31);
        mul(rh, rl, P1H, P1L);
        ah = (ah ^ rh) >>> 0;
        al = (al ^ rl) >>> 0;
        mul(ah, al, P1H, P1L);
        add(rh, rl, P4H, P4L);
        ah = rh; al = rl;
      }
      hh = ah; hl = al;
    } else {
      hh = P5H; hl = P5L;
    }
    // + total length (below 2^53)
    add(hh, hl, Math.floor(this.total / 0x100000000) >>> 0, this.total >>> 0);
    hh = rh; hl = rl;
    const b = this.buf;
    let i = 0;
    const n = this.held;
    for (; i + 8 <= n; i += 8) {
      const ll = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
      const lh = (b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24)) >>> 0;
      mul(lh, ll, P2H, P2L);
      rotl(rh, rl, 31);
      mul(rh, rl, P1H, P1L);
      hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
      rotl(hh, hl, 27);
      mul(rh, rl, P1H, P1L);
      add(rh, rl, P4H, P4L);
      hh = rh; hl = rl;
    }
    if (i + 4 <= n) {
      const w = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
      mul(0, w, P1H, P1L);
      hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
      rotl(hh, hl, 23);
      mul(rh, rl, P2H, P2L);
      add(rh, rl, P3H, P3L);
      hh = rh; hl = rl;
      i += 4;
    }
    for (; i < n; i++) {
      mul(0, b[i]!, P5H, P5L);
      hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
      rotl(hh, hl, 11);
      mul(rh, rl, P1H, P1L);
      hh = rh; hl = rl;
    }
    // avalanche
    hl = (hl ^ (hh >>> 1)) >>> 0; // h ^= h >> 33
    mul(hh, hl, P2H, P2L); hh = rh; hl = rl;
    hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0; hh = (hh ^ (hh >>> 29)) >>> 0; // h ^= h >> 29
    mul(hh, hl, P3H, P3L); hh = rh; hl = rl;
    hl = (hl ^ hh) >>> 0; // h ^= h >> 32
    return [hh, hl];
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
