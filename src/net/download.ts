// Downloads that survive the hosts relonix runs on: flaky egress, CDNs answering 503 or cutting
// bodies short, containers killed mid-transfer. A partial download lives in `<dest>.part` with a
// sidecar `<dest>.part.json` remembering what it is a part of, so the next attempt — in this
// process or after a restart — asks for the rest with Range instead of starting over (see
// resumeFrom). The checksum is computed while writing and checked before the final rename, so
// `dest` only ever holds a complete, verified file.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { errorMessage } from '../util/errors.ts';
import { readJson, writeFileAtomic } from '../util/fs.ts';
import { retry, spent, TransientError } from '../util/retry.ts';
import { httpFailure, request } from './http.ts';
import { copyLocal, finish, isLocalSource, retryHint } from './local.ts';
import { normalizeSha256 } from './sha256.ts';

export { isLocalSource, localSourcePath } from './local.ts';
export { defaultReleaseUrl, NIX_RELEASE_VERSION, resolveSha256 } from './release.ts';

export interface Progress {
  received: number;
  total?: number;
}

export interface DownloadOptions {
  /** http(s) URL, file:// URL or local path */
  url: string;
  dest: string;
  /** expected sha256 (hex, nix-base32 or SRI); checked before `dest` appears */
  sha256?: string;
  /** retries after the first attempt (default 6) */
  retries?: number;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** first back-off delay (default 500 ms, doubling) */
  minRetryDelayMs?: number;
  /** idle connection timeout (default 60 s) */
  timeoutMs?: number;
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

async function hashExisting(h: Hash, p: string): Promise<void> {
  for await (const chunk of createReadStream(p, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
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
  failure: unknown;
  readonly done: Promise<void>;
  constructor(readonly res: IncomingMessage) {
    let end!: () => void;
    this.done = new Promise<void>((r) => (end = r));
    res.on('data', (b: Buffer) => (this.sink ? this.sink(b) : this.early.push(b)));
    res.once('end', () => end());
    res.once('error', (e) => {
      this.failure ??= e;
      end();
    });
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

/** Writes the body after `offset` bytes of part, hashing the whole part; returns the bytes it now holds. */
async function receive(rx: Receiver, part: string, offset: number, h: Hash, total: number | undefined, onProgress?: (p: Progress) => void): Promise<number> {
  let received = offset;
  onProgress?.({ received, total });
  const ws = createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' });
  ws.once('error', (e) => {
    rx.failure ??= e;
    rx.res.destroy();
  });
  rx.start((b) => {
    h.update(b);
    received += b.length;
    onProgress?.({ received, total });
    ws.write(b);
    // bound memory when the disk is slower than the network
    if (ws.writableLength > 16 << 20) {
      rx.res.pause();
      ws.once('drain', () => rx.res.resume());
    }
  });
  await rx.done;
  await new Promise<void>((resolve) => ws.end(() => resolve()));
  if (ws.errored) rx.failure ??= ws.errored;
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
      await hashExisting(h, part);
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
  const etag = r.headers.etag;
  // a weak ETag cannot vouch for byte ranges
  const usableEtag = etag && !etag.startsWith('W/') ? etag : undefined;
  await writeFileAtomic(
    metaFile,
    JSON.stringify({ url, etag: usableEtag, lastModified: r.headers['last-modified'], total, sha256: expected } satisfies PartMeta),
  );
  const h = createHash('sha256');
  if (offset > 0) await hashExisting(h, part);
  const received = await receive(rx, part, offset, h, total, opts.onProgress);
  if (rx.failure) throw new TransientError(`${url}: the connection broke after ${received} bytes (${errorMessage(rx.failure)})`);
  if (total !== undefined && received !== total) throw new TransientError(`${url}: connection closed after ${received} of ${total} bytes`);
  return { sha256: h.digest('hex'), bytes: received, resumed: offset > 0 };
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
