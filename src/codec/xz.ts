// xz, for release tarballs and NARs alike: the host's xz when there is one, else xz compiled to
// WebAssembly (xz-decompress), so a host without xz-utils still bootstraps and restores. There is
// no pure encoder: compressing needs the host xz.
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeThrough } from '../util/spawn.ts';
import { CodecError } from './error.ts';
import { hostDecode } from './host-filter.ts';
import { encoderArgs, hostXz } from './host-tools.ts';

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
    return hostDecode('xz', xz, args, src, wasmXz, (detail) => new CodecError(`the xz stream is corrupt: ${detail}`));
  }
  return wasmXz(src);
}

async function* wasmXz(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  // loaded on first use: a run that needs no xz does not pay for the WebAssembly
  const m = (await import('xz-decompress')) as typeof import('xz-decompress') & { default?: typeof import('xz-decompress') };
  // a CommonJS package: its class is a named export or hangs off the default one, by loader
  const XzReadableStream = m.XzReadableStream ?? m.default!.XzReadableStream;
  const web = new XzReadableStream(Readable.toWeb(Readable.from(src)) as unknown as ReadableStream<Uint8Array>);
  try {
    yield* Readable.fromWeb(web as unknown as WebReadableStream<Uint8Array>) as AsyncIterable<Uint8Array>;
  } catch (e) {
    const code = /get_next_output failed with error code (\d+)/.exec(String((e as Error)?.message))?.[1];
    throw code ? new CodecError(`the xz stream is corrupt: ${XZ_RET[Number(code)] ?? `error ${code}`}`) : e;
  }
}

/** What xz-embedded's return codes mean, in the words of the xz program. */
const XZ_RET: Record<number, string> = {
  2: 'unsupported type of integrity check',
  3: 'cannot allocate memory',
  4: 'memory usage limit reached',
  5: 'file format not recognized',
  6: 'unsupported options',
  7: 'compressed data is corrupt',
  8: 'unexpected end of input',
};

/** Compresses with the host xz at `level`; the caller has checked that there is one. */
export function compressXz(src: AsyncIterable<Uint8Array>, level: number): AsyncIterable<Uint8Array> {
  const xz = hostXz();
  if (!xz) throw new Error('internal error: xz compression needs the host xz');
  return pipeThrough(xz, encoderArgs(level), src, (detail) => new CodecError(`xz failed while compressing: ${detail}`));
}
