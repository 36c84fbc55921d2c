// A file read piece by piece: the parser and planner ask for the parts they reach (parseElf's
// `ensure`), and only those are read. Reading every byte of hundreds of binaries would dominate a
// bulk `relonix patchelf`; the headers, tables and strings an edit needs are a few pages of each.
// Parts never asked for stay zero and are never written back.
import { closeSync, readSync } from 'node:fs';

/** Files this small are read whole: one read costs less than several. */
const SMALL = 128 << 10;
const HEAD = 64 << 10;

export class PartialFile {
  readonly buf: Buffer;
  /** Sorted, disjoint ranges already read. */
  private readonly filled: Array<[number, number]> = [];
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {
    this.buf = Buffer.alloc(size);
    this.ensure(0, size <= SMALL ? size : HEAD);
  }

  get complete(): boolean {
    return this.filled.length === 1 && this.filled[0]![0] === 0 && this.filled[0]![1] === this.size;
  }

  readonly ensure = (offset: number, length: number): void => {
    const from = Math.max(0, Math.min(offset, this.size));
    const to = Math.max(from, Math.min(offset + Math.max(0, length), this.size));
    let at = from;
    for (const [a, b] of this.filled) {
      if (b <= at) continue;
      if (a >= to) break;
      if (a > at) this.read(at, a);
      at = Math.max(at, b);
    }
    if (at < to) this.read(at, to);
  };

  readAll(): void {
    this.ensure(0, this.size);
  }

  close(): void {
    closeSync(this.fd);
  }

  private read(from: number, to: number): void {
    for (let at = from; at < to; ) {
      const n = readSync(this.fd, this.buf, at, to - at, at);
      if (n <= 0) throw Object.assign(new Error('Input/output error'), { code: 'EIO', syscall: 'read' });
      at += n;
    }
    this.filled.push([from, to]);
    this.filled.sort((x, y) => x[0] - y[0]);
    for (let i = this.filled.length - 1; i > 0; i--) {
      if (this.filled[i]![0] <= this.filled[i - 1]![1]) {
        this.filled[i - 1]![1] = Math.max(this.filled[i - 1]![1], this.filled[i]![1]);
        this.filled.splice(i, 1);
      }
    }
  }
}
