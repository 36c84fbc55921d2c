// A download's bytes in file order, from the first, while it is still arriving: what the
// connection brings is handed on as it comes, and what an earlier run left in the partial file is
// read from that file first. A reader can thus work on a file before it is whole; whatever it makes
// of the bytes must wait for the download's checksum before it is trusted.
import { createReadStream } from 'node:fs';
import { RelonixError } from '../util/errors.ts';

/** The most bytes held for a reader that is behind the connection: past it, the reader is dropped. */
const MAX_HELD = 64 << 20;

/** The download started the file over, or got ahead of its reader by more than it may hold. */
export function arrivalAbandoned(why: string): RelonixError {
  return new RelonixError(`reading the download as it arrived stopped: ${why}`, {
    hint: 'nothing to do: the file is read again once the download is complete',
  });
}

interface Piece {
  b: Buffer;
  at: number;
}

export class ArrivingBytes {
  private queue: Piece[] = [];
  private held = 0;
  private pos = 0;
  private whole?: { file: string; bytes: number };
  private failure: unknown;
  private wake?: () => void;

  /** `part`: the partial file the download writes (what an earlier run left is read from it). */
  constructor(private readonly part: string) {}

  /** Bytes of the body, written at offset `at` of the file. */
  push(b: Buffer, at: number): void {
    if (this.failure !== undefined) return;
    this.queue.push({ b, at });
    this.held += b.length;
    if (this.held > MAX_HELD) this.fail(arrivalAbandoned(`the reader fell more than ${MAX_HELD >> 20} MiB behind the download`));
    this.fire();
  }

  /** The download is complete: `file` holds all `bytes` (what no connection brought is read there). */
  end(file: string, bytes: number): void {
    this.whole = { file, bytes };
    this.fire();
  }

  /** The download failed (or was given up): the reader stops with this error. */
  fail(e: unknown): void {
    this.failure ??= e;
    this.queue = [];
    this.held = 0;
    this.fire();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const next = this.queue.shift();
      if (next) {
        this.held -= next.b.length;
        // a body from an earlier offset: the file was started over under the reader
        if (next.at < this.pos) throw arrivalAbandoned('the download started the file over');
        if (next.at > this.pos) yield* this.fromFile(this.part, next.at);
        this.pos += next.b.length;
        yield next.b;
        continue;
      }
      if (this.whole) {
        if (this.whole.bytes > this.pos) yield* this.fromFile(this.whole.file, this.whole.bytes);
        return;
      }
      await new Promise<void>((r) => {
        this.wake = r;
      });
    }
  }

  /** The bytes from the reader's position up to `to`, which are in `file` already. */
  private async *fromFile(file: string, to: number): AsyncGenerator<Buffer> {
    for await (const chunk of createReadStream(file, { start: this.pos, end: to - 1, highWaterMark: 1 << 20 })) {
      if (this.failure !== undefined) throw this.failure;
      this.pos += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (this.pos !== to) throw arrivalAbandoned(`${file} holds fewer bytes than the download said`);
  }

  private fire(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
