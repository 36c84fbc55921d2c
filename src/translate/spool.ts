// Bytes held back until their order is known: in memory up to a limit, then in a temporary file
// that is unlinked as soon as it is open, so nothing is left behind whatever stops the process.
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const IO_CHUNK = 1 << 20;

export interface SpoolOptions {
  /** bytes kept in memory before the rest goes to a temporary file (default 16 MiB) */
  memoryLimit?: number;
  /** where the temporary file goes (default the OS temp dir) */
  tmpDir?: string;
}

export class Spool {
  size = 0;
  private mem: Buffer[] = [];
  private starts: number[] = [];
  private fh: FileHandle | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;
  private readonly limit: number;
  private readonly tmpDir: string;

  constructor(opts: SpoolOptions = {}) {
    this.limit = opts.memoryLimit ?? 16 << 20;
    this.tmpDir = opts.tmpDir ?? os.tmpdir();
  }

  /** Whether the bytes went to a file. */
  get onDisk(): boolean {
    return this.fh !== undefined;
  }

  async append(b: Buffer): Promise<void> {
    if (!b.length) return;
    if (!this.fh && this.size + b.length > this.limit) await this.toDisk();
    if (this.fh) {
      this.pending.push(b);
      this.pendingBytes += b.length;
      if (this.pendingBytes >= IO_CHUNK) await this.flush();
    } else {
      this.mem.push(b);
      this.starts.push(this.size);
    }
    this.size += b.length;
  }

  private async toDisk(): Promise<void> {
    const dir = await fs.mkdtemp(path.join(this.tmpDir, 'relonix-spool-'));
    const file = path.join(dir, 'spool');
    try {
      this.fh = await fs.open(file, 'wx+', 0o600);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    this.pending = this.mem;
    this.pendingBytes = this.size;
    this.mem = [];
    this.starts = [];
    await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.pendingBytes) return;
    const bufs = this.pending;
    this.pending = [];
    await this.fh!.writev(bufs, this.written);
    this.written += this.pendingBytes;
    this.pendingBytes = 0;
  }

  /** The bytes of `ranges` (start, end, start, end, …) in that order. */
  async *read(ranges: readonly number[]): AsyncGenerator<Buffer> {
    await this.flush();
    for (let i = 0; i < ranges.length; i += 2) {
      const [from, to] = [ranges[i]!, ranges[i + 1]!];
      if (from < 0 || to > this.size || from > to) throw new Error(`internal error: spool range ${from}-${to} is outside 0-${this.size}`);
      yield* this.fh ? this.fromFile(from, to) : this.fromMemory(from, to);
    }
  }

  private *fromMemory(from: number, to: number): Generator<Buffer> {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= from) lo = mid;
      else hi = mid - 1;
    }
    for (let k = lo; from < to; k++) {
      const b = this.mem[k]!;
      const off = from - this.starts[k]!;
      const n = Math.min(b.length - off, to - from);
      yield b.subarray(off, off + n);
      from += n;
    }
  }

  private async *fromFile(from: number, to: number): AsyncGenerator<Buffer> {
    while (from < to) {
      const n = Math.min(IO_CHUNK, to - from);
      const b = Buffer.allocUnsafe(n);
      const { bytesRead } = await this.fh!.read(b, 0, n, from);
      if (bytesRead !== n) throw new Error(`internal error: the spool file ended at ${from + bytesRead}, before ${to}`);
      yield b;
      from += n;
    }
  }

  async close(): Promise<void> {
    this.mem = [];
    this.starts = [];
    this.pending = [];
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}
