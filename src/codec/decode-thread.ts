// Decoding on a thread of its own, where the host has no xz or zstd: the built-in decoders take
// seconds of CPU, and on the main thread they would take turns with the unpacking of what they
// decode; on a worker the two overlap on two cores. (The host's programs are fed and drained by the
// thread that unpacks: a thread between cost more CPU than the waits on their pipes.) Chunks cross as
// transferred copies, a bounded number of bytes in flight each way, so neither side runs far ahead
// of the other, and arrive as Buffers, as a program's output does.
import { createHash } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { errorMessage } from '../util/errors.ts';
import { startThread, type ThreadData } from '../util/thread.ts';
import { CodecError } from './error.ts';
import { type SendBatch, TarBatcher } from './tar-batches.ts';
import { decompressXz } from './xz.ts';
import { pureZstd } from './zstd.ts';

export type ThreadCodec = 'xz' | 'zstd';

export interface ThreadDecodeOptions {
  /** the sha256 (hex) of every byte of input, taken on the thread and given once the output has ended */
  onInputSha256?: (hex: string) => void;
  /** the output is a tar stream: each batch ends where an entry ends, so no file is split across two */
  tar?: boolean;
}

/**
 * Bytes either side may have sent that the other has not taken yet. The decoded side may run far
 * ahead: a decoder waiting on its reader is time lost for good, and memory is cheaper.
 */
const IN_WINDOW = 8 << 20;
const OUT_WINDOW = 32 << 20;

type Message =
  | { t: 'in'; b: ArrayBuffer }
  | { t: 'out'; b: ArrayBuffer; at: number; n: number }
  | { t: 'took'; n: number }
  | { t: 'end'; sha256?: string }
  | { t: 'stop' }
  | { t: 'error'; message: string };

/** How long a worker told to stop has to end its decoding itself, before it is terminated. */
const STOP_MS = 2000;

/**
 * Decoded bytes cross in batches of this many (or fewer, once the decoder pauses): a decoder's
 * output comes in small pieces, and each crossing costs the receiving thread a message, and a tar
 * entry split across two of them a copy to join it.
 */
const BATCH = 1 << 20;
/** How long a partial batch waits for more before it goes. */
const BATCH_WAIT_MS = 2;

/** A copy the sender can give away: a Buffer may be a view of a pool or of the decoder's window. */
function own(b: Uint8Array): ArrayBuffer {
  return new Uint8Array(b).buffer;
}

/** Gathers small chunks into batches of BATCH bytes, copied as they come (the source may reuse its memory). */
class Batcher {
  private buf = new Uint8Array(BATCH);
  private fill = 0;
  private timer?: NodeJS.Timeout;
  constructor(private readonly send: SendBatch) {}
  add(b: Uint8Array): void {
    for (let off = 0; off < b.length; ) {
      const n = Math.min(b.length - off, BATCH - this.fill);
      this.buf.set(b.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === BATCH) this.flush();
    }
    clearTimeout(this.timer);
    if (this.fill) this.timer = setTimeout(() => this.flush(), BATCH_WAIT_MS);
  }
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.fill) return;
    const full = this.fill === BATCH ? this.buf : this.buf.slice(0, this.fill);
    this.buf = new Uint8Array(BATCH);
    this.fill = 0;
    this.send(full.buffer as ArrayBuffer, 0, full.length);
  }
}

/** Something to wait on until another message arrives. */
class Signal {
  private wake?: () => void;
  wait(): Promise<void> {
    return new Promise((r) => {
      this.wake = r;
    });
  }
  fire(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/** Decodes `src` on a worker thread with the built-in decoders, as decompressXz without the host's xz or pureZstd would. */
export async function* decodeOffThread(src: AsyncIterable<Uint8Array>, codec: ThreadCodec, o: ThreadDecodeOptions = {}): AsyncGenerator<Uint8Array> {
  const w = startThread('decode', { codec, sha256: o.onInputSha256 !== undefined, tar: o.tar === true });
  const outbox: Buffer[] = [];
  let finished = false;
  let failure: Error | undefined;
  let stopped = false;
  let inFlight = 0;
  const toFeed = new Signal();
  const toRead = new Signal();
  w.on('message', (m: Message) => {
    if (m.t === 'out') outbox.push(Buffer.from(m.b, m.at, m.n));
    else if (m.t === 'took') inFlight -= m.n;
    else if (m.t === 'end') {
      finished = true;
      if (m.sha256) o.onInputSha256?.(m.sha256);
    } else if (m.t === 'error') failure ??= new CodecError(m.message);
    toFeed.fire();
    toRead.fire();
  });
  w.on('error', (e) => {
    failure ??= e;
    toFeed.fire();
    toRead.fire();
  });
  w.on('exit', () => {
    if (!finished) failure ??= new CodecError(`the ${codec} decoder thread stopped before the end of the stream`);
    toFeed.fire();
    toRead.fire();
  });
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const b of src) {
        if (stopped || failure) return;
        const copy = own(b);
        w.postMessage({ t: 'in', b: copy } satisfies Message, [copy]);
        inFlight += copy.byteLength;
        while (inFlight >= IN_WINDOW && !stopped && !failure) await toFeed.wait();
      }
      if (!stopped && !failure) w.postMessage({ t: 'end' } satisfies Message);
    } catch (e) {
      feedError = e;
    } finally {
      toRead.fire();
    }
  })();
  try {
    for (;;) {
      const b = outbox.shift();
      if (b) {
        w.postMessage({ t: 'took', n: b.length } satisfies Message);
        yield b;
        continue;
      }
      // a failure to read the input is the news, not the decoder stopping short for want of it
      if (feedError) throw feedError;
      if (failure) throw failure;
      if (finished) break;
      await toRead.wait();
    }
    await feeding;
  } finally {
    stopped = true;
    toFeed.fire();
    // a reader that left early: the worker ends its decoding itself (terminated, it could not)
    if (!finished) {
      const exited = new Promise((r) => w.once('exit', r));
      w.postMessage({ t: 'stop' } satisfies Message);
      await Promise.race([exited, new Promise((r) => setTimeout(r, STOP_MS).unref())]);
    }
    await w.terminate();
  }
}

/** The worker's side: decodes what comes in, hands back what comes out. */
export async function serveDecode(port: MessagePort, data: ThreadData): Promise<void> {
  const inbox: Uint8Array[] = [];
  let ended = false;
  let stopping = false;
  let outstanding = 0;
  const toDecode = new Signal();
  const toSend = new Signal();
  // every byte as it comes in, whatever the decoder takes of it
  const h = data.sha256 === true ? createHash('sha256') : undefined;
  port.on('message', (m: Message) => {
    if (m.t === 'in') {
      const b = Buffer.from(m.b);
      h?.update(b);
      inbox.push(b);
    } else if (m.t === 'end') ended = true;
    else if (m.t === 'stop') stopping = ended = true;
    else if (m.t === 'took') outstanding -= m.n;
    toDecode.fire();
    toSend.fire();
  });
  const input = async function* (): AsyncGenerator<Uint8Array> {
    for (;;) {
      const b = inbox.shift();
      if (b) {
        port.postMessage({ t: 'took', n: b.length } satisfies Message);
        yield b;
      } else if (ended) return;
      else await toDecode.wait();
    }
  };
  const decoded = data.codec === 'zstd' ? pureZstd(input()) : decompressXz(input(), { noHost: true });
  const send: SendBatch = (b, at, n) => {
    port.postMessage({ t: 'out', b, at, n } satisfies Message, [b]);
    outstanding += n;
  };
  const batches = data.tar === true ? new TarBatcher(send, BATCH_WAIT_MS) : new Batcher(send);
  try {
    for await (const out of decoded) {
      // leaving the loop ends the decoder (its input ended too, should it be waiting for more)
      if (stopping) break;
      batches.add(out);
      while (outstanding >= OUT_WINDOW && !stopping) await toSend.wait();
    }
    batches.flush();
    port.postMessage({ t: 'end', sha256: h?.digest('hex') } satisfies Message);
  } catch (e) {
    batches.flush();
    port.postMessage({ t: 'error', message: errorMessage(e) } satisfies Message);
  }
  port.close();
}
