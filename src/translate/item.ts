// One translated path as the publisher takes it: upstream's NAR fetched (FileHash checked),
// decompressed, rewritten as it streams (or copied, for a fixed output), and refused unless what
// was read is exactly the NAR upstream's signed narinfo describes.
import path from 'node:path';
import { decompress } from '../cache/compress.ts';
import type { PublishItem } from '../cache/publish.ts';
import { openNarFile } from '../cache/restore-nar.ts';
import type { StagedNar } from '../cache/staged-nar.ts';
import { decompressXz } from '../codec/xz.ts';
import type { Layout } from '../prefix/layout.ts';
import { formatNarHash } from '../store/nar/write.ts';
import { parseNarHashField } from '../store/reginfo.ts';
import { RelonixError } from '../util/errors.ts';
import { makeFixedOutputPath, parseContentAddress } from './paths.ts';
import type { TranslateItem } from './plan.ts';
import { type CompressedFile, type RewriteSummary, rewriteNar } from './rewrite.ts';
import type { SpoolOptions } from './spool.ts';
import type { Upstream } from './upstream.ts';

export interface ItemContext {
  layout: Layout;
  upstream: Upstream;
  spool?: SpoolOptions;
  /** files of translated paths with store references inside compressed data, by path */
  compressed: Map<string, CompressedFile[]>;
  /** read upstream's NARs as they arrive, without a resumable download to disk first */
  streamed?: boolean;
  /** decode xz here, never through the host's xz (see translate-thread.ts) */
  xzHere?: boolean;
}

export function translatedItem(c: ItemContext, it: TranslateItem): PublishItem {
  let summary: RewriteSummary | undefined;
  return {
    path: it.path,
    references: it.references,
    deriver: it.deriver,
    size: it.from.narSize,
    source: `${it.from.storePath} ${it.from.narHash}`,
    nar: () => {
      summary = undefined;
      return upstreamNar(c, it, (s) => (summary = s));
    },
    // a rewrite hashes what it writes: that is the NAR's hash (a copy is hashed where it is staged)
    ...(it.verbatim ? {} : { hashed: () => summary?.output }),
    accept: (staged) => {
      const read = it.verbatim ? { hash: staged.narHash, size: staged.narSize } : summary?.input;
      if (!read) throw new Error(`internal error: the rewrite of ${it.from.storePath} ended without a summary`);
      checkRead(c, it, read);
      if (summary?.compressed.length) c.compressed.set(it.path, summary.compressed);
      return { ca: keptCa(it, staged, c.layout.storeDir) };
    },
  };
}

async function* upstreamNar(c: ItemContext, it: TranslateItem, onSummary: (s: RewriteSummary) => void): AsyncGenerator<Uint8Array> {
  const file = await openNarFile(c.layout, it.from, c.upstream.target, { streamed: c.streamed });
  try {
    // the host's xz past IN_PROCESS_BYTES (decompressXz falls back to WebAssembly): its start and pipe
    // cost less than decoding here in relonix translate (bench:translate, path mode without
    // compression: 1.91 s against 2.28 s), but not in the translator (xzHere). A smaller NAR, as most
    // of a closure are, decodes here sooner than a process starts beside the translator's memory
    // (streams of 3-300 KB beside 150 MB: 2 ms in WebAssembly, 10-11 ms through xz)
    const raw =
      c.xzHere && it.from.compression === 'xz' ? decompressXz(file.bytes, { noHost: true }) : decompress(file.bytes, it.from.compression, it.from.fileSize);
    if (it.verbatim) {
      yield* raw;
      return;
    }
    const r = rewriteNar(raw, { fromStoreDir: c.upstream.storeDir, toStoreDir: c.layout.storeDir, hashes: it.hashes }, c.spool);
    onSummary(r.summary);
    yield* r.chunks;
  } finally {
    await file.done();
  }
}

function checkRead(c: ItemContext, it: TranslateItem, read: { hash: Buffer; size: number }): void {
  if (read.hash.equals(parseNarHashField(it.from.narHash)) && read.size === it.from.narSize) return;
  throw upstreamNarDiffers(`${c.upstream.target.url}/${it.from.url}`, it.from, read);
}

/** Upstream's NAR is not the one its signed narinfo describes. */
export function upstreamNarDiffers(
  url: string,
  ni: Pick<TranslateItem['from'], 'storePath' | 'narHash' | 'narSize'>,
  read: { hash: Buffer; size: number },
): RelonixError {
  return new RelonixError(
    `${ni.storePath}: the NAR from ${url} has hash ${formatNarHash(read.hash)} and size ${read.size}, but its signed narinfo says ${ni.narHash} and ${ni.narSize}`,
    { kind: 'integrity', hint: 'the upstream cache holds a corrupt or altered NAR: nothing of this translation was published' },
  );
}

/**
 * Upstream's content address, kept only where it still holds: a fixed output copied as it is, whose
 * path at our store dir follows from it. Anywhere else Nix would find the claim false.
 */
function keptCa(it: TranslateItem, staged: StagedNar, storeDir: string): string | undefined {
  if (!it.verbatim || !it.from.ca || !staged.narHash.equals(parseNarHashField(it.from.narHash))) return undefined;
  let ca;
  try {
    ca = parseContentAddress(it.from.ca);
  } catch {
    return undefined; // a content address this relonix cannot read is not one it can vouch for
  }
  if (ca.kind !== 'fixed') return undefined;
  const name = path.basename(it.path).slice(33);
  return makeFixedOutputPath(ca.method, ca.algo, ca.hex, name, storeDir) === it.path ? it.from.ca : undefined;
}
