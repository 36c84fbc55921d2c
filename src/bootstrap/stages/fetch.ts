// Stage "fetch": the release tarball into the prefix's downloads dir, verified (a local one is
// verified where it lies). Re-running after a kill resumes the partial download; re-running after
// success costs one local checksum.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ArrivingBytes } from '../../net/arriving.ts';
import { download, isLocalSource, localSourcePath, resolveSha256 } from '../../net/download.ts';
import { checksumError, localSource } from '../../net/local.ts';
import { normalizeSha256, sha256OfFile } from '../../net/sha256.ts';
import type { Layout } from '../../prefix/layout.ts';
import { noSpace } from '../../util/errors.ts';
import { mib } from '../../util/format.ts';
import { exists, freeSpace, readJson, writeFileAtomic } from '../../util/fs.ts';
import { type BytesProgress, progressText } from '../../util/progress.ts';
import { type EarlyUnpack, type FetchDetail, type Stage, tarballKey } from '../stage.ts';
import { estimateNeed } from './preflight.ts';
import { startEarlyUnpack } from './unpack.ts';

export interface FetchOptions {
  layout: Layout;
  url: string;
  sha256?: string;
  /** a local tarball's sha256, when it was read already */
  content?: string;
  onProgress?: (p: BytesProgress) => void;
  signal?: AbortSignal;
  retries?: number;
  minRetryDelayMs?: number;
  /** the most bytes the tarball may have */
  maxBytes?: number;
  /** checks, once the tarball's size is known, that it fits (see DownloadOptions.onSize) */
  onSize?: (total: number, have: number) => Promise<void>;
  /** the download's bytes as they arrive (see DownloadOptions.onBody); not called for a file already there */
  onBody?: (b: Buffer, at: number) => void;
}

interface FetchRecord {
  url: string;
  sha256: string;
}

/** The file name a URL or path downloads to (query and fragment ignored). */
export function downloadName(url: string): string {
  const base = isLocalSource(url) ? path.basename(localSourcePath(url)) : path.posix.basename(new URL(url).pathname);
  const safe = base.replace(/[^A-Za-z0-9+\-._=]/g, '_');
  return safe && safe !== '.' && safe !== '..' ? safe : 'nix.tar.xz';
}

/**
 * A local tarball is used where it lies: its checksum is checked there and nothing is copied. A
 * file replaced at the same path is another tarball (the bootstrap keys it on its content), and the
 * unpack stage checks the bytes it reads against this checksum again.
 */
async function localTarball(url: string, sha256: string | undefined, content?: string): Promise<{ tarball: string; sha256: string }> {
  const { file: p } = await localSource(url);
  const expected = sha256 ? normalizeSha256(sha256) : await resolveSha256(url);
  // the bootstrap read the file's sha256 when it started (its key); the unpack checks what it reads
  const actual = content ?? (await sha256OfFile(p));
  if (actual !== expected)
    throw checksumError(url, expected, actual, 'the file is damaged or the expected checksum is wrong: fetch the file again, or pass its right --sha256');
  return { tarball: p, sha256: actual };
}

/** Where a download of `url` goes in the prefix. */
function downloadPath(l: Layout, url: string): string {
  return path.join(l.downloadsDir, downloadName(url));
}

export async function fetchTarball(opts: FetchOptions): Promise<{ tarball: string; sha256: string }> {
  const { layout, url } = opts;
  if (isLocalSource(url)) return localTarball(url, opts.sha256, opts.content);
  const dest = downloadPath(layout, url);
  const recordFile = `${dest}.json`;
  let expected = opts.sha256 ? normalizeSha256(opts.sha256) : undefined;

  if (await exists(dest)) {
    // A finished download from an earlier run. Without --sha256, the checksum it was verified
    // against stands in for `<url>.sha256`, so a re-run needs no network.
    const rec = await readJson<FetchRecord>(recordFile).catch(() => undefined);
    const want = expected ?? (rec?.url === url ? rec.sha256 : undefined);
    if (want && (await sha256OfFile(dest)) === want) return { tarball: dest, sha256: want };
    await fs.rm(dest, { force: true });
    await fs.rm(recordFile, { force: true });
  }
  expected ??= await resolveSha256(url, { retries: opts.retries, minRetryDelayMs: opts.minRetryDelayMs, signal: opts.signal });
  const r = await download({
    url,
    dest,
    sha256: expected,
    onProgress: opts.onProgress,
    signal: opts.signal,
    retries: opts.retries,
    minRetryDelayMs: opts.minRetryDelayMs,
    maxBytes: opts.maxBytes,
    onSize: opts.onSize,
    onBody: opts.onBody,
  });
  await writeFileAtomic(recordFile, `${JSON.stringify({ url, sha256: r.sha256 } satisfies FetchRecord)}\n`);
  return { tarball: dest, sha256: r.sha256 };
}

export const fetchStage: Stage<'fetch'> = {
  name: 'fetch',
  title: 'Download the Nix tarball',
  inputs: (ctx) => ({ source: tarballKey(ctx.tarball!) }),
  run: async (ctx, _s, progress) => {
    const l = ctx.layout;
    const t = ctx.tarball!;
    // the unpack starts on the bytes as they arrive (decompressing beside the download), and the
    // unpack stage finishes it, trusting it only if it read what this stage verified
    const dest = downloadPath(l, t.url);
    const arriving = new ArrivingBytes(`${dest}.part`);
    let early: EarlyUnpack | undefined;
    let r: { tarball: string; sha256: string };
    let bytes: number;
    try {
      r = await fetchTarball({
        layout: l,
        url: t.url,
        sha256: t.sha256,
        content: t.content,
        onProgress: (p) => progress(progressText(p)),
        maxBytes: ctx.maxDownloadBytes,
        // preflight may not have learned the size (no HEAD, no Content-Length): check it again now
        onSize: async (total, have) => {
          const need = estimateNeed(total) - have;
          const free = await freeSpace(l.prefix);
          if (free < need) throw noSpace(l.prefix, free, need);
          early ??= startEarlyUnpack(ctx, dest, arriving, total);
        },
        onBody: (b, at) => early && arriving.push(b, at),
      });
      bytes = (await fs.stat(r.tarball)).size;
    } catch (e) {
      // what was unpacked so far is removed before the failure is said
      arriving.fail(e);
      await early?.done.catch(() => {});
      throw e;
    }
    if (early) {
      arriving.end(r.tarball, bytes);
      ctx.handoff = { unpack: early };
    }
    const detail: FetchDetail = { tarball: r.tarball, sha256: r.sha256, bytes };
    return { detail, summary: `${path.basename(r.tarball)} (${mib(bytes)}, sha256 ${r.sha256.slice(0, 12)}…)` };
  },
};
