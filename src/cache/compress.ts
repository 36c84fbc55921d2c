// NAR compression. zstd and xz are what Nix writes (xz by default, zstd with ?compression=zstd);
// none is a NAR as it is. The codecs (src/codec/) decompress with the host's zstd/xz when they are
// there and pure decoders otherwise, so no host tool is required to restore; compressing needs the
// host tool. zstd is preferred when publishing because it decompresses about five times faster
// than xz and restores are what a cache is for.

import { decodeOffThread } from '../codec/decode-thread.ts';
import { firstLine, type HostTool, hostTool, hostXz, hostZstd, markBroken } from '../codec/host-tools.ts';
import { encoderFailure } from '../codec/probe.ts';
import { compressXz, decompressXz } from '../codec/xz.ts';
import { compressZstd, decompressZstd, pureZstd } from '../codec/zstd.ts';
import { RelonixError } from '../util/errors.ts';

export type Compression = 'zstd' | 'xz' | 'none';
/** what `relonix publish --compression` takes: a compression, or `auto` to pick the best the host can write */
export type CompressionChoice = Compression | 'auto';

/**
 * zstd level for publishing. Measured on the fixture closure (48 NARs, 77.1 MB, one thread each):
 * -3 gives 29.0 MB in 0.8 s, -9 26.3 MB in 2.3 s, -12 26.2 MB in 4.2 s, -19 23.2 MB in 29 s
 * (xz -6: 20.7 MB in 32 s). Decompressing the zstd ones takes 0.25-0.32 s, the xz one 1.4 s.
 * Past -9, each level costs much more time than it saves bytes.
 */
export const ZSTD_LEVEL = 9;
/** xz level for publishing (xz's own default, and what Nix writes) */
export const XZ_LEVEL = 6;

/** The host program that decompresses `c`, or null when there is none (or `c` needs none). */
export function hostDecompressor(c: string): string | null {
  return c === 'xz' ? hostXz() : c === 'zstd' ? hostZstd() : null;
}

export function narExtension(c: string): string {
  return c === 'xz' ? '.nar.xz' : c === 'zstd' ? '.nar.zst' : '.nar';
}

/** --compression of publish or translate naming what relonix does not write. */
export function unknownCompression(c: string): RelonixError {
  return new RelonixError(`NAR compression "${c}" is not supported by relonix (it reads and writes zstd, xz and none)`, {
    kind: 'usage',
    hint: 'use --compression auto, zstd, xz or none',
  });
}

/** A cache's NAR in a compression relonix cannot read: the cache is fine for others, not for relonix. */
export function unreadableCompression(c: string, what = 'a NAR'): RelonixError {
  return new RelonixError(`${what} is compressed with "${c}", which relonix does not read (it reads zstd, xz and none)`, {
    kind: 'failure',
    hint: 'publish it to the cache again with --compression zstd, xz or none',
  });
}

/** `auto` or a compression, as `relonix publish --compression` takes it. */
export function checkCompressionChoice(c: string): CompressionChoice {
  if (c === 'auto' || c === 'zstd' || c === 'xz' || c === 'none') return c;
  throw unknownCompression(c);
}

/**
 * The compression a publish will write. `auto` is zstd when the host has a zstd that works, else xz
 * when it has an xz that works, else none; a program that is there but fails is said once, with
 * what relonix writes instead. An explicit zstd without a host zstd, or with one that fails, is
 * refused; an explicit xz without a working host xz falls back to none with a notice, as it always
 * has for a host without xz.
 */
export async function resolveCompression(want: CompressionChoice, log: (msg: string) => void = () => undefined): Promise<Compression> {
  if (want === 'auto') {
    const failed: [HostTool, string, string][] = [];
    let pick: Compression = 'none';
    for (const c of ['zstd', 'xz'] as const) {
      const bin = hostTool(c);
      const why = bin && (await encoderFailure(c, bin, LEVEL[c]));
      if (bin && why) failed.push([c, bin, why]);
      else if (bin) {
        pick = c;
        break;
      }
    }
    for (const [c, bin, why] of failed) markBroken(c, bin, why, `NARs are published ${pick === 'none' ? 'uncompressed' : `with ${pick}`} instead`);
    return pick;
  }
  if (want === 'none') return want;
  const bin = hostTool(want);
  const why = bin && (await encoderFailure(want, bin, LEVEL[want]));
  if (want === 'zstd') {
    if (!bin) throw noHostZstd();
    if (why) throw hostZstdFails(bin, why);
  } else if (!bin) {
    log('notice: no xz on this host, so NARs are published uncompressed (Compression: none); install xz-utils for smaller caches');
    return 'none';
  } else if (why) {
    markBroken('xz', bin, why, 'NARs are published uncompressed (Compression: none)');
    return 'none';
  }
  return want;
}

const LEVEL: Record<HostTool, number> = { zstd: ZSTD_LEVEL, xz: XZ_LEVEL };

/** Compresses a stream with the host tool (resolveCompression has checked it is there). */
export function compressStream(src: AsyncIterable<Uint8Array>, c: Compression): AsyncIterable<Uint8Array> {
  if (c === 'none') return src;
  return c === 'zstd' ? compressZstd(src, ZSTD_LEVEL) : compressXz(src, XZ_LEVEL);
}

/**
 * Below this many compressed bytes a NAR decodes in-process sooner than the host's program starts
 * (most NARs of a closure are this small): measured on the fixture's 49 xz NARs, the 35 under it
 * took 460 ms through xz and 330 ms in WebAssembly.
 */
export const IN_PROCESS_BYTES = 256 * 1024;

/**
 * Decompresses a long stream (many NARs one after another): the host's program, else the built-in
 * decoder on a thread of its own, so decoding and writing what it decodes share the cores.
 */
export function decompressLong(src: AsyncIterable<Uint8Array>, c: string): AsyncIterable<Uint8Array> {
  if ((c === 'xz' || c === 'zstd') && hostDecompressor(c) === null) return decodeOffThread(src, c);
  return decompress(src, c);
}

/** Decompresses a stream of compressed bytes; `bytes`, its size when known, picks the decoder. */
export function decompress(src: AsyncIterable<Uint8Array>, c: string, bytes?: number): AsyncIterable<Uint8Array> {
  const small = bytes !== undefined && bytes < IN_PROCESS_BYTES;
  if (c === 'none') return src;
  if (c === 'xz') return decompressXz(src, { noHost: small });
  if (c === 'zstd') return small ? pureZstd(src) : decompressZstd(src);
  throw unreadableCompression(c);
}

/** --compression zstd on a host whose zstd fails (relonix has no encoder of its own). */
export function hostZstdFails(bin: string, why: string): RelonixError {
  return new RelonixError(`the host's zstd (${bin}) does not work here: ${firstLine(why)}`, {
    kind: 'failure',
    hint: `repair it or take it off PATH, or publish with --compression auto (it takes xz then) or --compression xz`,
  });
}

/** --compression zstd on a host without the zstd program (relonix has no encoder of its own). */
export function noHostZstd(): RelonixError {
  return new RelonixError('zstd compression needs the zstd program, and there is none on PATH', {
    kind: 'usage',
    hint: 'install zstd (apt-get install zstd, dnf install zstd, apk add zstd), or publish with --compression xz or --compression none',
  });
}
