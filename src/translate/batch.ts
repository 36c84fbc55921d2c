// Output gathered into 64 KiB buffers. A NAR of small files is mostly small tokens: written into
// one buffer they cost a copy each instead of an allocation each, and go out as few chunks, each of
// which costs a hop through every generator between here and the reader.
import { padLength, ZEROS } from '../store/nar/framing.ts';

const SIZE = 1 << 16;
/** buffers this big go out as they are, uncopied */
const PASS = SIZE >> 2;

export class Batch {
  /** bytes put so far */
  pos = 0;
  private buf = Buffer.allocUnsafe(SIZE);
  private used = 0;
  private sealed: Buffer[] = [];
  private sealedBytes = 0;

  put(b: Buffer): void {
    if (b.length >= PASS) {
      this.seal();
      this.pos += b.length;
      this.push(b);
    } else b.copy(this.room(b.length));
  }

  /** `n` bytes of room for the caller to fill, in order with what was put before. */
  room(n: number): Buffer {
    this.pos += n;
    if (n >= PASS) {
      this.seal();
      const b = Buffer.allocUnsafe(n);
      this.push(b);
      return b;
    }
    if (this.used + n > SIZE) this.seal();
    this.used += n;
    return this.buf.subarray(this.used - n, this.used);
  }

  /** A NAR string: its length, its bytes, zeros to a multiple of 8. */
  putString(s: Buffer): void {
    const pad = padLength(s.length);
    if (s.length >= PASS) {
      this.room(8).writeBigUInt64LE(BigInt(s.length));
      this.put(s);
      this.put(ZEROS.subarray(0, pad));
      return;
    }
    const r = this.room(8 + s.length + pad);
    r.writeUInt32LE(s.length, 0);
    r.writeUInt32LE(0, 4);
    s.copy(r, 8);
    r.fill(0, 8 + s.length);
  }

  u64(n: number): void {
    const r = this.room(8);
    r.writeUInt32LE(n % 2 ** 32, 0);
    r.writeUInt32LE(Math.floor(n / 2 ** 32), 4);
  }

  private seal(): void {
    if (!this.used) return;
    this.push(this.buf.subarray(0, this.used));
    this.buf = Buffer.allocUnsafe(SIZE);
    this.used = 0;
  }

  private push(b: Buffer): void {
    this.sealed.push(b);
    this.sealedBytes += b.length;
  }

  /** What is ready once there is a batch of it; everything when `all`. */
  *take(all = false): Generator<Buffer> {
    if (all) this.seal();
    else if (this.sealedBytes < SIZE) return;
    const out = this.sealed;
    this.sealed = [];
    this.sealedBytes = 0;
    yield* out;
  }
}
