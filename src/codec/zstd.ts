// zstd, for NARs: the host's zstd when there is one, else fzstd in JavaScript. A walk over the
// frame and block headers in front of fzstd turns corrupt input into errors, and XXH64 checks each
// frame's content checksum behind it, as the zstd program does. There is no pure encoder:
// compressing needs the host zstd.
import { Decompress as ZstdDecompress } from 'fzstd';
import { pipeThrough } from '../util/spawn.ts';
import { CodecError } from './error.ts';
import { hostDecode } from './host-filter.ts';
import { encoderArgs, hostZstd } from './host-tools.ts';
import { Xxh64 } from './xxh64.ts';

export function decompressZstd(src: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const zstd = hostZstd();
  if (zstd) return hostDecode('zstd', zstd, ['-d', '-c', '-q'], src, pureZstd, (detail) => new CodecError(`the zstd stream is corrupt: ${detail}`));
  return pureZstd(src);
}

/** Compresses with the host zstd at `level`; the caller has checked that there is one. */
export function compressZstd(src: AsyncIterable<Uint8Array>, level: number): AsyncIterable<Uint8Array> {
  const zstd = hostZstd();
  if (!zstd) throw new Error('internal error: zstd compression needs the host zstd');
  return pipeThrough(zstd, encoderArgs(level), src, (detail) => new CodecError(`zstd failed while compressing: ${detail}`));
}

/** fzstd takes input in pieces this big, so what one push produces stays small. */
const ZSTD_PIECE = 1 << 16;
/** the largest window the pure decoder accepts: zstd's own default limit when decompressing */
export const ZSTD_MAX_WINDOW = 1 << 27;

/**
 * zstd in JavaScript: frames one after another (what `cat a.zst b.zst` makes) decode as one stream,
 * and each frame's content checksum is checked, as the zstd program does.
 */
export async function* pureZstd(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let out: Uint8Array[] = [];
  const frames = new ZstdFrames();
  const sum = new Xxh64();
  const d = new ZstdDecompress((chunk) => {
    if (!chunk.length) return;
    sum.update(chunk);
    out.push(chunk);
  });
  const corrupt = (e: unknown) => new CodecError(`the zstd stream is corrupt: ${(e as Error).message || String(e)}`);
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
          if (end.checksum !== undefined && sum.digestLow32() !== end.checksum) throw new CodecError('a frame fails its content checksum');
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
    if (this.frameCount === 0 && between) throw new CodecError('it is empty');
    if (!between) throw new CodecError('it ends inside a frame (truncated)');
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
          throw new CodecError(`no zstd frame starts here (magic ${m.toString(16).padStart(8, '0')})`);
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
        if (fhd & 8) throw new CodecError('a frame header has its reserved bit set');
        const single = (fhd >> 5) & 1;
        const fcsFlag = fhd >> 6;
        const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
        this.fhd = fhd;
        this.state = 'header';
        this.buf = [];
        this.need = (single ? 0 : 1) + DICT_ID_BYTES[fhd & 3]! + fcsBytes;
        if (this.need === 0) throw new CodecError('a frame header is impossible');
        return false;
      }
      case 'header':
        this.frameHeader(h);
        return false;
      case 'block':
        return this.blockHeader(h);
      case 'checksum':
        this.finishFrame(u32());
        return true;
    }
  }

  /** the frame header after its descriptor: dictionary, window size, checksum flag */
  private frameHeader(h: number[]): void {
    const fhd = this.fhd;
    const single = (fhd >> 5) & 1;
    const dictBytes = DICT_ID_BYTES[fhd & 3]!;
    const dictAt = single ? 0 : 1;
    if (h.slice(dictAt, dictAt + dictBytes).some((x) => x !== 0)) throw new CodecError('a frame needs a dictionary');
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
    if (this.window > ZSTD_MAX_WINDOW) throw new CodecError(`a frame wants a ${this.window}-byte window, more than the ${ZSTD_MAX_WINDOW} allowed`);
    this.checksum = ((fhd >> 2) & 1) === 1;
    this.enter('block');
  }

  /** a block header; true when the block ends the frame */
  private blockHeader(h: number[]): boolean {
    const bh = h[0]! | (h[1]! << 8) | (h[2]! << 16);
    const last = bh & 1;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) throw new CodecError('a block has the reserved type');
    if (size > Math.min(MAX_BLOCK, Math.max(this.window, 1))) throw new CodecError(`a block of ${size} bytes is larger than its frame allows`);
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
}
