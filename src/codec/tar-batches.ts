// Decoded tar bytes cut into batches along the archive's entries: a batch ends where an entry ends,
// so a file's content reaches the tar parser as one piece of one batch, never split across two
// (which would cost the unpacking thread a copy to join it). Only the framing is read here (where
// each 512-byte header says its entry ends); the parser on the other side reads the same bytes as
// a plain stream and stays the only judge of what they hold, so a hostile or odd header (a size a
// pax record replaces, say) can only cost a split, never change what is unpacked.

/** Bytes a batch holds at least before it goes (a bigger entry makes its batch bigger). */
const BATCH = 1 << 20;
/** Entries bigger than this go in BATCH-sized pieces rather than whole. */
const MAX_WHOLE = 64 << 20;
const BLOCK = 512;

/** The bytes of the entry a tar header starts (its body, padded to whole blocks); 0 for an empty block. */
export function entryBodyBytes(h: Uint8Array): number {
  let size = 0;
  if (h[124]! & 0x80) {
    // base-256 (GNU), big-endian in the field's other bytes
    for (let i = 125; i < 136; i++) size = size * 256 + h[i]!;
  } else {
    for (let i = 124; i < 136; i++) {
      const c = h[i]!;
      if (c >= 0x30 && c <= 0x37) size = size * 8 + (c - 0x30);
      else if (c === 0 || c === 0x20) {
        if (size > 0) break;
      } else break;
    }
  }
  return Math.ceil(size / BLOCK) * BLOCK;
}

/** Where a batch's bytes lie in the buffer that carries them (given away whole: it is not copied). */
export type SendBatch = (buffer: ArrayBuffer, at: number, length: number) => void;

/** Gathers decoded tar bytes (copied as they come: the source may reuse its memory) into batches of whole entries. */
export class TarBatcher {
  private buf = new Uint8Array(BATCH);
  /** bytes of `buf` sent already (as a copy, the buffer kept for what follows them) */
  private start = 0;
  private fill = 0;
  /** bytes of `buf` that end where an entry ends */
  private whole = 0;
  /** with an entry's header read: where in `buf` that entry ends (beyond it, for one that goes in pieces) */
  private end = -1;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly send: SendBatch,
    private readonly waitMs: number,
  ) {}

  add(b: Uint8Array): void {
    for (let off = 0; off < b.length; ) {
      off += this.end < 0 ? this.header(b, off) : this.body(b, off);
    }
    clearTimeout(this.timer);
    // a pause in the decoder sends what is whole; the entry in progress waits for the rest of it
    if (this.whole > this.start) this.timer = setTimeout(() => this.sendWhole(), this.waitMs);
  }

  /** Everything, whole or not: the stream has ended (or failed). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.end = -1;
    this.cut(this.fill, BATCH);
  }

  /** Takes the bytes of a header; once it is all here, knows where its entry ends. */
  private header(b: Uint8Array, off: number): number {
    if (this.buf.length - this.whole < BLOCK) this.cut(this.whole, BATCH);
    const n = Math.min(BLOCK - (this.fill - this.whole), b.length - off);
    this.buf.set(b.subarray(off, off + n), this.fill);
    this.fill += n;
    if (this.fill - this.whole < BLOCK) return n;
    const body = entryBodyBytes(this.buf.subarray(this.whole, this.fill));
    if (body === 0) {
      this.whole = this.fill;
      return n;
    }
    const len = BLOCK + body;
    // an entry that does not fit what is left: the batch goes, and the entry starts the next one
    if (this.whole + len > this.buf.length) this.cut(this.whole, len <= MAX_WHOLE ? Math.max(BATCH, len) : BATCH);
    this.end = this.whole + len;
    return n;
  }

  private body(b: Uint8Array, off: number): number {
    const n = Math.min(b.length - off, this.end - this.fill, this.buf.length - this.fill);
    this.buf.set(b.subarray(off, off + n), this.fill);
    this.fill += n;
    if (this.fill === this.end) {
      this.whole = this.fill;
      this.end = -1;
    } else if (this.fill === this.buf.length) this.cut(this.fill, BATCH); // a piece of an entry too big to go whole
    return n;
  }

  /** What is whole goes; of it and the entry in progress, the smaller is copied. */
  private sendWhole(): void {
    this.timer = undefined;
    if (this.whole === this.start) return;
    if (this.fill - this.whole <= this.whole - this.start) {
      this.cut(this.whole, BATCH);
      return;
    }
    this.send(this.buf.slice(this.start, this.whole).buffer, 0, this.whole - this.start);
    this.start = this.whole;
  }

  /** Gives the buffer away up to `at`; what follows starts a new buffer of at least `size` bytes. */
  private cut(at: number, size: number): void {
    const rest = this.fill - at;
    const next = new Uint8Array(Math.max(size, rest));
    next.set(this.buf.subarray(at, this.fill));
    // given away, the buffer is gone from this thread: nothing of it is read after
    if (at > this.start) this.send(this.buf.buffer as ArrayBuffer, this.start, at - this.start);
    this.buf = next;
    this.start = 0;
    this.fill = rest;
    this.whole = Math.max(0, this.whole - at);
    if (this.end >= 0) this.end -= at;
  }
}
