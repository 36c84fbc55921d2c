// xz, for release tarballs and NARs alike: the host's xz when there is one, else xz compiled to
// WebAssembly (xz-decompress), so a host without xz-utils still bootstraps and restores. There is
// no pure encoder: compressing needs the host xz.
import { createWriteStream, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { tempSibling } from '../util/fs.ts';
import { shQuote } from '../util/shell.ts';
import { inKeptShell, pipeThrough } from '../util/spawn.ts';
import { CodecError } from './error.ts';
import { hostXz } from './host-tools.ts';

export interface XzOptions {
  /** decode in WebAssembly even when the host has xz */
  noHost?: boolean;
  /** threads for the host xz (0: one per core); one big file decodes faster on several */
  threads?: number;
}

/** Which decoder decompressXz uses with these options. */
export function xzDecoder(o: XzOptions = {}): 'xz' | 'wasm' {
  return !o.noHost && hostXz() ? 'xz' : 'wasm';
}

export function decompressXz(src: AsyncIterable<Uint8Array>, o: XzOptions = {}): AsyncIterable<Uint8Array> {
  const xz = o.noHost ? null : hostXz();
  if (xz) {
    const args = ['-d', '-c', '-q', ...(o.threads === undefined ? [] : [`-T${o.threads}`])];
    return pipeThrough(xz, args, src, corrupt);
  }
  return wasmXz(src);
}

const corrupt = (detail: string) => new CodecError(`the xz stream is corrupt: ${detail}`);

/**
 * Bytes a read back from the decoded file asks for. What reads them copies each read into fresh
 * memory: at 1 MiB each copy is memory of its own that the first write faults in page by page, at
 * 256 KiB the allocator hands back what the last one freed (fewer page faults and less CPU for a
 * rewrite of 45 NARs of 3.5 MB, 64 KiB no better).
 */
const READ = 1 << 18;
/** Pairs of READ-byte buffers that lent reads have handed back, for the next to use. */
const spare: Buffer[][] = [];

/**
 * xz decoded by the host's xz (the caller has checked that there is one) from a file into a file,
 * both in `dir` (which its owner empties at start), then read back in big reads. Through pipes this
 * process would read 64 KiB at a time into fresh memory; a program writing a file costs it nothing
 * until the bytes are read, and xz is started by a kept shell (inKeptShell says why). The files go
 * once read, or on failure. Nothing comes out before the whole stream decoded: a corrupt one is an
 * error before any byte. The chunks are lent: read into memory used again, each valid until the one
 * after it is asked for (the reader keeps a copy of anything it keeps longer).
 */
export async function* decompressXzViaFile(src: AsyncIterable<Uint8Array>, dir: string): AsyncGenerator<Buffer> {
  const xz = hostXz();
  if (!xz) throw new Error('internal error: decoding xz into a file needs the host xz');
  await fs.mkdir(dir, { recursive: true });
  const base = tempSibling(path.join(dir, 'xz'));
  const [input, output, errors] = [`${base}.xz`, `${base}.nar`, `${base}.err`];
  let fh: FileHandle | undefined;
  let bufs: Buffer[] | undefined;
  try {
    await pipeline(Readable.from(src), createWriteStream(input, { flags: 'wx', mode: 0o600 }));
    const status = await inKeptShell(`${shQuote(xz)} -d -c -q <${shQuote(input)} >${shQuote(output)} 2>${shQuote(errors)}`);
    // not the stream's fault: no refusal of upstream's NAR for it
    if (status === null) throw new Error('the shell that runs xz ended before it');
    if (status !== 0) throw corrupt((await fs.readFile(errors, 'utf8').catch(() => '')).trim() || `xz exited with ${status}`);
    fh = await fs.open(output, 'r');
    await Promise.all([input, output, errors].map((f) => fs.rm(f, { force: true })));
    bufs = spare.pop() ?? [Buffer.allocUnsafeSlow(READ), Buffer.allocUnsafeSlow(READ)];
    for (let pos = 0, k = 0; ; k ^= 1) {
      const b = bufs[k]!;
      const { bytesRead } = await fh.read(b, 0, READ, pos);
      if (!bytesRead) return;
      pos += bytesRead;
      yield b.subarray(0, bytesRead);
    }
  } finally {
    await fh?.close();
    if (bufs) spare.push(bufs);
    await Promise.all([input, output, errors].map((f) => fs.rm(f, { force: true })));
  }
}

async function* wasmXz(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  // loaded on first use: a run that needs no xz does not pay for the WebAssembly
  const m = (await import('xz-decompress')) as typeof import('xz-decompress') & { default?: typeof import('xz-decompress') };
  // a CommonJS package: its class is a named export or hangs off the default one, by loader
  const XzReadableStream = m.XzReadableStream ?? m.default!.XzReadableStream;
  const web = new XzReadableStream(Readable.toWeb(Readable.from(src)) as unknown as ReadableStream<Uint8Array>);
  yield* Readable.fromWeb(web as unknown as WebReadableStream<Uint8Array>) as AsyncIterable<Uint8Array>;
}

/** Compresses with the host xz at `level`; the caller has checked that there is one. */
export function compressXz(src: AsyncIterable<Uint8Array>, level: number): AsyncIterable<Uint8Array> {
  const xz = hostXz();
  if (!xz) throw new Error('internal error: xz compression needs the host xz');
  return pipeThrough(xz, ['-c', '-q', '-T1', `-${level}`], src, (detail) => new CodecError(`xz failed while compressing: ${detail}`));
}
