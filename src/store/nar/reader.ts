// Reads NAR framing from a stream of chunks, hashing every byte: the one NAR reader, under both the
// unpacker (unpack.ts) and the rewriter (translate/rewrite.ts). One await per token, and none for
// data already buffered: NARs of many small files are mostly framing, and each await costs more
// than the token.
import { createHash } from 'node:crypto';
import { MAX_TOKEN, NarFormatError, padLength } from './framing.ts';

const SLASH = 0x2f;
const DOT = 0x2e;

/** Refuses what Nix's parser refuses in a directory: `/`, NUL, `.`, `..`, and names not strictly ascending. */
export function checkEntryName(name: Buffer, prev: Buffer | undefined): void {
  let bad = !name.length || (name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT)));
  for (let i = 0; i < name.length && !bad; i++) bad = name[i] === SLASH || name[i] === 0;
  if (bad) throw new NarFormatError(`the NAR holds an invalid entry name "${name.toString('latin1').slice(0, 60)}"`);
  if (prev && Buffer.compare(prev, name) >= 0)
    throw new NarFormatError(`NAR directory entries are not sorted and unique ("${name.toString('latin1').slice(0, 60)}")`);
}

const EMPTY = Buffer.alloc(0);

function view(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export class NarReader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  private readonly it: Iterator<Uint8Array> | AsyncIterator<Uint8Array>;
  readonly hash = createHash('sha256');
  size = 0;

  constructor(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.it = Symbol.asyncIterator in src ? src[Symbol.asyncIterator]() : (src as Iterable<Uint8Array>)[Symbol.iterator]();
  }

  private get buffered(): number {
    return this.buf.length - this.pos;
  }

  /** Reads on until `n` bytes are buffered (or the input ends, when `orEnd`). */
  private async fill(n: number, orEnd = false): Promise<boolean> {
    while (this.buffered < n) {
      const r = await this.it.next();
      if (r.done) {
        if (orEnd) return false;
        throw new NarFormatError('the NAR ends early (truncated download?)');
      }
      const chunk = view(r.value);
      this.hash.update(chunk);
      this.size += chunk.length;
      this.buf = this.buffered ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
      this.pos = 0;
    }
    return true;
  }

  /** `n` bytes if they are buffered already (a view: valid until the reader moves on). */
  tryRead(n: number): Buffer | undefined {
    if (this.buffered < n) return undefined;
    this.pos += n;
    return this.buf.subarray(this.pos - n, this.pos);
  }

  async read(n: number): Promise<Buffer> {
    if (this.buffered < n) await this.fill(n);
    return this.tryRead(n)!;
  }

  async u64(): Promise<number> {
    const b = await this.read(8);
    if (b.readUInt32LE(4) > 0x1fffff) throw new NarFormatError('a NAR length is out of range');
    return b.readUInt32LE(4) * 2 ** 32 + b.readUInt32LE(0);
  }

  async padding(len: number): Promise<void> {
    const pad = padLength(len);
    if (pad && !(await this.read(pad)).every((x) => x === 0)) throw new NarFormatError('non-zero NAR padding');
  }

  /** A string token of at most `max` bytes, its padding checked (a view). */
  async bytes(max: number): Promise<Buffer> {
    if (this.buffered < 8) await this.fill(8);
    const len = this.buf.readUInt32LE(this.pos) + this.buf.readUInt32LE(this.pos + 4) * 2 ** 32;
    if (len > max) throw new NarFormatError(`a NAR string of ${len} bytes is longer than allowed (${max})`);
    const padded = (len + 7) & ~7;
    if (this.buffered < 8 + padded) await this.fill(8 + padded);
    const start = this.pos + 8;
    for (let i = start + len; i < start + padded; i++) if (this.buf[i] !== 0) throw new NarFormatError('non-zero NAR padding');
    this.pos = start + padded;
    return this.buf.subarray(start, start + len);
  }

  async str(): Promise<string> {
    return (await this.bytes(MAX_TOKEN)).toString('latin1');
  }

  /** Consumes the exact bytes `tokens` (framing encoded ahead of time), or says what is there instead. */
  async expect(tokens: Buffer, what: string): Promise<void> {
    if (this.buffered < tokens.length) await this.fill(tokens.length);
    if (this.buf.compare(tokens, 0, tokens.length, this.pos, this.pos + tokens.length) !== 0) {
      throw new NarFormatError(`expected ${what} in the NAR, found "${this.buf.toString('latin1', this.pos + 8, this.pos + 40).replace(/[^ -~]/g, '.')}"`);
    }
    this.pos += tokens.length;
  }

  /** Exactly `n` bytes as they arrive, without gathering them (views). */
  async *take(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      if (!this.buffered) await this.fill(1);
      const k = Math.min(n, this.buffered);
      n -= k;
      yield this.tryRead(k)!;
    }
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill(1, true));
  }

  /** Lets the input go (a download, a decompressor) when reading stops before its end. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}
