// Downloads that survive the hosts relonix runs on: flaky egress, CDNs answering 503 or cutting
// bodies short, containers killed mid-transfer. A partial download lives in `<dest>.part` with a
// sidecar `<dest>.part.json` remembering what it is a part of, so the next attempt — in this
// process or after a restart — asks for the rest with Range instead of starting over (see
// resumeFrom). The checksum is computed while writing and checked before the final rename, so
// `dest` only ever holds a complete, verified file.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { errnoWords, errorMessage, isNoSpace, RelonixError } from '../util/errors.ts';
import { readJson, writeFileAtomic } from '../util/fs.ts';
import type { BytesProgress } from '../util/progress.ts';
import { retry, spent, TransientError } from '../util/retry.ts';
import { httpFailure, request } from './http.ts';
import { copyLocal, finish, isLocalSource, retryHint, tooBig } from './local.ts';
import { hashFile, normalizeSha256 } from './sha256.ts';

export { isLocalSource, localSourcePath } from './local.ts';
export { defaultReleaseUrl, NIX_RELEASE_VERSION, resolveSha256 } from './release.ts';

export interface DownloadOptions {
  /** http(s) URL, file:// URL or local path */
  url: string;
  dest: string;
  /** expected sha256 (hex, nix-base32 or SRI); checked before `dest` appears */
  sha256?: string;
  /** retries after the first attempt (default 6) */
  retries?: number;
  onProgress?: (p: BytesProgress) => void;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** first back-off delay (default 500 ms, doubling) */
  minRetryDelayMs?: number;
  /** idle connection timeout (default 60 s) */
  timeoutMs?: number;
  /** the most bytes the file may have, announced or not (default: no bound) */
  maxBytes?: number;
  /**
   * Called once the file's size is known, before its body is written (`have`: bytes of it already
   * on disk): the caller checks that it fits. A rejection ends the download, the part kept.
   */
  onSize?: (total: number, have: number) => Promise<void>;
  /** each piece of a body as it arrives, with the file offset it is written at (before any checksum) */
  onBody?: (b: Buffer, at: number) => void;
  /**
   * false: the part is not synced to disk before it takes its name. For a file used once and
   * thrown away (a NAR a restore unpacks) with a sha256: what a crash leaves unsynced fails that
   * checksum when it is resumed, and is fetched again.
   */
  durable?: boolean;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  bytes: number;
  /** true when some bytes came from an earlier, interrupted attempt */
  resumed: boolean;
}

/** What `<dest>.part.json` remembers about the part beside it. */
export interface PartMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
  /** the sha256 the part is meant to end with, when one was given */
  sha256?: string;
}

/**
 * Where a new attempt starts, given the part on disk and what its sidecar says. With a validator
 * (ETag, Last-Modified) it resumes with If-Range, so a file that changed on the server is sent
 * whole and never spliced onto an old prefix. Without one, it resumes only when the expected
 * sha256 is known and is the one the part was fetched for: then the final hash decides.
 */
export function resumeFrom(meta: PartMeta | undefined, partBytes: number, url: string, expected: string | undefined): { offset: number; ifRange?: string } {
  if (partBytes === 0 || !meta || meta.url !== url) return { offset: 0 };
  if (meta.total !== undefined && partBytes > meta.total) return { offset: 0 };
  const validator = meta.etag ?? meta.lastModified;
  if (validator) return { offset: partBytes, ifRange: validator };
  if (expected && meta.sha256 === expected) return { offset: partBytes };
  return { offset: 0 };
}

async function sizeOf(p: string): Promise<number> {
  try {
    return (await fs.stat(p)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
}

interface Fetched {
  sha256: string;
  bytes: number;
  resumed: boolean;
}

/**
 * Takes a body from its first byte on: setting up the file takes a moment, and a connection that
 * drops meanwhile would otherwise discard what had already arrived.
 */
class Receiver {
  private early: Buffer[] = [];
  private sink?: (b: Buffer) => void;
  /** the connection's failure: worth another attempt */
  failure: unknown;
  /** why the body was cut here (the disk, or the size bound): not worth another attempt */
  stopped: unknown;
  readonly done: Promise<void>;
  constructor(readonly res: IncomingMessage) {
    let end!: () => void;
    this.done = new Promise<void>((r) => (end = r));
    res.on('data', (b: Buffer) => (this.sink ? this.sink(b) : this.early.push(b)));
    res.once('end', () => end());
    // a body cut by stop() ends in close, with neither end nor error
    res.once('close', () => end());
    res.once('error', (e) => {
      this.failure ??= e;
      end();
    });
  }
  /** Cuts the body for a reason no retry fixes. */
  stop(why: unknown): void {
    this.stopped ??= why;
    this.res.destroy();
  }
  start(sink: (b: Buffer) => void): void {
    this.sink = sink;
    for (const b of this.early.splice(0)) sink(b);
  }
}

/** The status of an answer, judged: what to do with it, or the error to throw. */
function judge(status: number, offset: number, meta: PartMeta | undefined): 'complete' | 'restart' | 'body' | undefined {
  // 416 for the part as it was when the previous run stopped: it was already complete
  if (status === 416) return offset > 0 && meta?.total === offset ? 'complete' : 'restart';
  if (status === 200 || status === 206) return 'body';
  return undefined;
}

/**
 * Writes the body after `offset` bytes of part, hashing the whole part; returns the bytes it now
 * holds. The body is cut past `limit` bytes (what the server announced, or the bound).
 */
async function receive(
  rx: Receiver,
  part: string,
  offset: number,
  h: Hash,
  total: number | undefined,
  limit: Limit,
  on: Pick<DownloadOptions, 'onProgress' | 'onBody' | 'durable'>,
): Promise<number> {
  const { onProgress, onBody } = on;
  let received = offset;
  onProgress?.({ received, total });
  const ws = createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' });
  ws.once('error', (e) => rx.stop(e));
  rx.start((b) => {
    if (rx.stopped) return;
    if (received + b.length > limit.bytes) {
      rx.stop(limit.error(received + b.length));
      return;
    }
    h.update(b);
    onBody?.(b, received);
    received += b.length;
    onProgress?.({ received, total });
    ws.write(b);
    // bound memory when the disk is slower than the network (chunks already read still come after
    // pause(): one wait for drain, not one per chunk)
    if (ws.writableLength > 16 << 20 && !rx.res.isPaused()) {
      rx.res.pause();
      ws.once('drain', () => rx.res.resume());
    }
  });
  await rx.done;
  ws.end();
  // an errored stream may never call end's callback: wait for it to be finished either way
  await finished(ws).catch(() => undefined);
  if (ws.errored) rx.stopped ??= ws.errored;
  if (on.durable === false) return received;
  const fh = await fs.open(part, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return received;
}

/** One request: continue the part if the server can, else start it over. */
async function attempt(opts: DownloadOptions, expected: string | undefined): Promise<Fetched> {
  const { url } = opts;
  const part = `${opts.dest}.part`;
  const metaFile = `${part}.json`;
  const meta = await readJson<PartMeta>(metaFile).catch(() => undefined);
  const from = resumeFrom(meta, await sizeOf(part), url, expected);
  let offset = from.offset;
  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...opts.headers };
  if (offset > 0) headers.range = `bytes=${offset}-`;
  if (from.ifRange) headers['if-range'] = from.ifRange;
  const r = await request(url, { headers, idleMs: opts.timeoutMs ?? 60_000, signal: opts.signal });
  const rx = new Receiver(r.stream);
  const verdict = judge(r.status, offset, meta);
  if (verdict !== 'body') {
    r.drop();
    if (verdict === 'complete') {
      const h = createHash('sha256');
      await hashFile(h, part);
      return { sha256: h.digest('hex'), bytes: offset, resumed: true };
    }
    if (verdict === 'restart') {
      await fs.rm(part, { force: true });
      throw new TransientError(`HTTP 416 for ${url}: the partial download did not fit the file on the server; starting over`);
    }
    if (r.status >= 400) throw await httpFailure(r, `GET ${url}`, r.status === 404 ? 'check the URL (version and system in the file name)' : retryHint(url));
    throw new TransientError(`unexpected HTTP ${r.status} from ${url}`);
  }
  let total: number | undefined;
  if (r.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(r.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== offset) {
      r.drop();
      await fs.rm(part, { force: true });
      throw new TransientError(`${url} answered a range other than the one asked for; starting over`);
    }
    total = m[3] === '*' ? undefined : Number(m[3]);
  } else {
    // 200: no Range asked, or the server ignores it, or If-Range said the file changed
    offset = 0;
    total = r.headers['content-length'] ? Number(r.headers['content-length']) : undefined;
  }
  const max = opts.maxBytes ?? Infinity;
  if (total !== undefined && total > max) {
    r.drop();
    throw tooBig(url, total, max);
  }
  if (total !== undefined && opts.onSize) {
    try {
      await opts.onSize(total, offset);
    } catch (e) {
      r.drop();
      throw e;
    }
  }
  const etag = r.headers.etag;
  // a weak ETag cannot vouch for byte ranges
  const usableEtag = etag && !etag.startsWith('W/') ? etag : undefined;
  await writeFileAtomic(
    metaFile,
    JSON.stringify({ url, etag: usableEtag, lastModified: r.headers['last-modified'], total, sha256: expected } satisfies PartMeta),
  );
  const h = createHash('sha256');
  if (offset > 0) await hashFile(h, part);
  // the server's own size bounds the body; without one, the bound does
  const limit: Limit = { bytes: total ?? max, error: (seen) => (total === undefined ? tooBig(url, undefined, max) : longerThanSaid(url, total, seen)) };
  const received = await receive(rx, part, offset, h, total, limit, opts);
  if (rx.stopped) throw diskOrBound(rx.stopped, part);
  if (rx.failure) throw new TransientError(`${url}: the connection broke after ${received} bytes (${errorMessage(rx.failure)})`);
  if (total !== undefined && received !== total) throw new TransientError(`${url}: connection closed after ${received} of ${total} bytes`);
  return { sha256: h.digest('hex'), bytes: received, resumed: offset > 0 };
}

interface Limit {
  bytes: number;
  error(seen: number): Error;
}

/** A server that sends more than the size it announced: the body is cut there. */
export function longerThanSaid(url: string, total: number, seen: number): RelonixError {
  return new RelonixError(`${url} sent ${seen} bytes or more after announcing ${total}: the download stopped there`, {
    kind: 'network',
    hint: 'the server or a proxy in between is broken; try another mirror, or download the file yourself and pass its path as --url',
  });
}

/**
 * Why a body was cut on purpose: the bound's error as it is; a full disk as the raw errno (the
 * caller knows what the whole install needs); any other failure of the disk, in words.
 */
function diskOrBound(why: unknown, part: string): unknown {
  if (why instanceof RelonixError || isNoSpace(why)) return why;
  return downloadUnwritable(part, why);
}

/** The disk refused the download's partial file (not full: that is noSpace). */
export function downloadUnwritable(part: string, why: unknown): RelonixError {
  return new RelonixError(`cannot write the download ${part}: ${errnoWords(why)}`, {
    kind: 'preflight',
    hint: "check that the prefix's filesystem is writable and healthy, then run the same command again: the download resumes",
    cause: why,
  });
}

/** Attempts until one gets the whole file, or the retries are spent (then a network error). */
async function fetchPart(opts: DownloadOptions, expected: string | undefined): Promise<Fetched> {
  let attempts = 0;
  try {
    return await retry(() => {
      attempts++;
      return attempt(opts, expected);
    }, opts);
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw spent(e, `could not download ${opts.url} after ${attempts} attempt${attempts === 1 ? '' : 's'}`, retryHint(opts.url));
  }
}

export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const expected = opts.sha256 ? normalizeSha256(opts.sha256) : undefined;
  if (isLocalSource(opts.url)) return copyLocal(opts, expected);
  const part = `${opts.dest}.part`;
  await fs.mkdir(path.dirname(opts.dest), { recursive: true });
  let got = await fetchPart(opts, expected);
  if (expected && got.sha256 !== expected && got.resumed) {
    // the resumed bytes do not belong to the file asked for (no validator vouched for them, or
    // the server changed the file under one): once more, from the first byte
    await fs.rm(part, { force: true });
    await fs.rm(`${part}.json`, { force: true });
    got = await fetchPart(opts, expected);
  }
  await finish(part, opts.dest, opts.url, got.sha256, expected);
  return { path: opts.dest, sha256: got.sha256, bytes: got.bytes, resumed: got.resumed };
}
