// Downloads that survive the hosts relonix runs on: flaky egress, CDNs answering 503 or cutting
// bodies short, containers killed mid-transfer. A partial download lives in `<dest>.part` with a
// sidecar `<dest>.part.json` remembering the validators (ETag / Last-Modified), so the next attempt
// — in this process or after a restart — asks for the rest with Range + If-Range instead of starting
// over. The checksum is computed while writing and checked before the final rename, so `dest` only
// ever holds a complete, verified file.
import { createHash, type Hash } from 'node:crypto';
import { promises as fs, createReadStream, createWriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import got, { type Response } from 'got';
import pRetry, { AbortError } from 'p-retry';
import { RelonixError, errorMessage } from '../util/errors.ts';
import { readJson, writeFileAtomic } from '../util/fs.ts';
import { normalizeSha256 } from './sha256.ts';

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
  /** first back-off delay (default 1000 ms, doubling) */
  minRetryDelayMs?: number;
  /** idle socket / response timeout (default 60 s) */
  timeoutMs?: number;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  bytes: number;
  /** true when some bytes came from an earlier, interrupted attempt */
  resumed: boolean;
}

interface PartMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

/** Local paths and file:// URLs are copied, not fetched. */
export function isLocalSource(url: string): boolean {
  return url.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:/i.test(url);
}

export function localSourcePath(url: string): string {
  return url.startsWith('file:') ? fileURLToPath(url) : path.resolve(url);
}

/** Errors a later attempt can fix: the server or the network, not the request. */
class Transient extends Error {}

function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

function retryHint(url: string): string {
  return `check the network path to ${new URL(url).host}; running the same command again resumes the partial download (or download the file yourself and pass its path as --url)`;
}

async function hashExisting(h: Hash, p: string): Promise<void> {
  for await (const chunk of createReadStream(p, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
}

async function sizeOf(p: string): Promise<number | undefined> {
  try {
    return (await fs.stat(p)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function checksumError(url: string, expected: string, actual: string): RelonixError {
  return new RelonixError(`checksum mismatch for ${url}: expected sha256 ${expected}, got ${actual}`, {
    kind: 'integrity',
    hint: 'the file is corrupt or the expected checksum is wrong; the partial download was deleted, so running again fetches it afresh',
  });
}

async function finish(part: string, dest: string, url: string, actual: string, expected: string | undefined): Promise<void> {
  if (expected && actual !== expected) {
    await fs.rm(part, { force: true });
    await fs.rm(`${part}.json`, { force: true });
    throw checksumError(url, expected, actual);
  }
  await fs.rename(part, dest);
  await fs.rm(`${part}.json`, { force: true });
}

async function copyLocal(opts: DownloadOptions, expected: string | undefined): Promise<DownloadResult> {
  const src = localSourcePath(opts.url);
  let total: number;
  try {
    total = (await fs.stat(src)).size;
  } catch {
    throw new RelonixError(`${src} does not exist`, { hint: 'pass an existing file, a file:// URL or an http(s) URL as --url' });
  }
  const part = `${opts.dest}.part`;
  await fs.mkdir(path.dirname(opts.dest), { recursive: true });
  const h = createHash('sha256');
  let received = 0;
  const fh = await fs.open(part, 'w');
  try {
    for await (const chunk of createReadStream(src, { highWaterMark: 1 << 20, signal: opts.signal })) {
      const b = chunk as Buffer;
      h.update(b);
      await fh.write(b);
      received += b.length;
      opts.onProgress?.({ received, total });
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
  const actual = h.digest('hex');
  await finish(part, opts.dest, opts.url, actual, expected);
  return { path: opts.dest, sha256: actual, bytes: received, resumed: false };
}

export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const expected = opts.sha256 ? normalizeSha256(opts.sha256) : undefined;
  if (isLocalSource(opts.url)) return copyLocal(opts, expected);

  const { url, dest } = opts;
  const part = `${dest}.part`;
  const metaFile = `${part}.json`;
  await fs.mkdir(path.dirname(dest), { recursive: true });
  let resumed = false;
  let attempts = 0;

  // One attempt: continue the part if the server can, else start it over. Resolves with the digest of
  // the complete part file.
  const attempt = async (): Promise<{ sha256: string; bytes: number }> => {
    attempts++;
    const meta = await readJson<PartMeta>(metaFile).catch(() => undefined);
    let offset = (await sizeOf(part)) ?? 0;
    // Resume only what we can validate: same URL and a validator for If-Range, so a file that
    // changed on the server is never spliced onto an old prefix.
    const validator = meta?.etag ?? meta?.lastModified;
    if (offset > 0 && (!meta || meta.url !== url || !validator)) offset = 0;
    if (offset > 0 && meta?.total !== undefined && offset > meta.total) offset = 0;

    const headers: Record<string, string> = { 'accept-encoding': 'identity', ...opts.headers };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = validator!;
    }
    const stream = got.stream(url, {
      headers,
      retry: { limit: 0 },
      throwHttpErrors: false,
      decompress: false,
      timeout: { connect: 30_000, socket: opts.timeoutMs ?? 60_000, response: opts.timeoutMs ?? 60_000 },
      signal: opts.signal,
    });
    // Take the body from the first byte on: setting up the file takes a moment, and a connection
    // that drops meanwhile would otherwise discard what had already arrived.
    const early: Buffer[] = [];
    let sink: ((b: Buffer) => void) | undefined;
    let failure: unknown;
    let bodyDone!: () => void;
    const body = new Promise<void>((resolve) => (bodyDone = resolve));
    stream.on('data', (b: Buffer) => (sink ? sink(b) : early.push(b)));
    stream.once('end', () => bodyDone());
    stream.once('error', (e) => {
      failure = e;
      bodyDone();
    });
    const response = await new Promise<Response>((resolve, reject) => {
      stream.once('response', resolve);
      stream.once('error', reject);
    });
    const status = response.statusCode;
    const drop = () => stream.destroy();

    if (status === 416 && offset > 0 && meta?.total === offset) {
      // the part was already complete when the previous run stopped
      drop();
      const h = createHash('sha256');
      await hashExisting(h, part);
      resumed = true;
      return { sha256: h.digest('hex'), bytes: offset };
    }
    if (status === 416) {
      drop();
      await fs.rm(part, { force: true });
      throw new Transient(`HTTP 416 for ${url}: the partial download did not fit the file on the server; starting over`);
    }
    if (status >= 400) {
      drop();
      const msg = `HTTP ${status} ${response.statusMessage ?? ''}`.trim() + ` from ${url}`;
      if (retryableStatus(status)) throw new Transient(msg);
      throw new AbortError(
        new RelonixError(msg, {
          kind: 'network',
          hint: status === 404 ? 'check the URL (version and system in the file name)' : retryHint(url),
        }),
      );
    }
    if (status !== 200 && status !== 206) {
      drop();
      throw new Transient(`unexpected HTTP ${status} from ${url}`);
    }

    let total: number | undefined;
    const length = response.headers['content-length'] ? Number(response.headers['content-length']) : undefined;
    if (status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(response.headers['content-range'] ?? ''));
      if (!m || Number(m[1]) !== offset) {
        drop();
        await fs.rm(part, { force: true });
        throw new Transient(`${url} answered a range other than the one asked for; starting over`);
      }
      total = m[3] === '*' ? undefined : Number(m[3]);
    } else {
      // 200: no Range asked, or the server ignores it, or If-Range said the file changed
      offset = 0;
      total = length;
    }
    const etag = response.headers.etag;
    const lastModified = response.headers['last-modified'];
    // a weak ETag cannot vouch for byte ranges
    const usableEtag = etag && !etag.startsWith('W/') ? etag : undefined;
    await writeFileAtomic(metaFile, JSON.stringify({ url, etag: usableEtag, lastModified, total } satisfies PartMeta));

    const h = createHash('sha256');
    if (offset > 0) await hashExisting(h, part);
    let received = offset;
    opts.onProgress?.({ received, total });
    const ws = createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' });
    ws.once('error', (e) => {
      failure ??= e;
      stream.destroy();
      bodyDone();
    });
    sink = (b: Buffer) => {
      h.update(b);
      received += b.length;
      opts.onProgress?.({ received, total });
      ws.write(b);
      // bound memory when the disk is slower than the network
      if (ws.writableLength > 16 << 20) {
        stream.pause();
        ws.once('drain', () => stream.resume());
      }
    };
    for (const b of early.splice(0)) sink(b);
    await body;
    await new Promise<void>((resolve) => ws.end(() => resolve()));
    if (ws.errored) failure ??= ws.errored;
    const fh = await fs.open(part, 'r+');
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
    if (failure) throw failure;
    if (offset > 0) resumed = true;
    if (total !== undefined && received !== total) {
      throw new Transient(`${url}: connection closed after ${received} of ${total} bytes`);
    }
    return { sha256: h.digest('hex'), bytes: received };
  };

  let done: { sha256: string; bytes: number };
  try {
    done = await pRetry(attempt, {
      retries: opts.retries ?? 6,
      minTimeout: opts.minRetryDelayMs ?? 1000,
      maxTimeout: 30_000,
      factor: 2,
      randomize: true,
      signal: opts.signal,
      shouldRetry: ({ error }) => !(error instanceof RelonixError) && !opts.signal?.aborted,
    });
  } catch (e) {
    if (e instanceof RelonixError) throw e;
    if (opts.signal?.aborted) throw e;
    throw new RelonixError(`could not download ${url} after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${errorMessage(e)}`, {
      kind: 'network',
      hint: retryHint(url),
      cause: e,
    });
  }
  await finish(part, dest, url, done.sha256, expected);
  return { path: dest, sha256: done.sha256, bytes: done.bytes, resumed };
}

/**
 * The expected sha256 of a release file, read from `<url>.sha256` as releases.nixos.org publishes it
 * (first token; hex, or nix-base32 which is converted).
 */
export async function resolveSha256(
  url: string,
  opts: { retries?: number; minRetryDelayMs?: number; signal?: AbortSignal; headers?: Record<string, string> } = {},
): Promise<string> {
  let text: string;
  let where: string;
  if (isLocalSource(url)) {
    where = `${localSourcePath(url)}.sha256`;
    try {
      text = await fs.readFile(where, 'utf8');
    } catch {
      throw new RelonixError(`no checksum for ${url}: ${where} does not exist`, {
        kind: 'usage',
        hint: 'pass --sha256 HEX, or put the checksum next to the file as <file>.sha256',
      });
    }
  } else {
    const u = new URL(url);
    u.pathname += '.sha256';
    where = u.toString();
    try {
      text = await pRetry(
        async () => {
          const r = await got(where, { retry: { limit: 0 }, throwHttpErrors: false, timeout: { request: 60_000 }, headers: opts.headers, signal: opts.signal });
          if (r.statusCode >= 400) {
            const msg = `HTTP ${r.statusCode} from ${where}`;
            if (retryableStatus(r.statusCode)) throw new Transient(msg);
            throw new AbortError(
              new RelonixError(`no checksum for ${url}: ${msg}`, {
                kind: 'network',
                hint: 'pass --sha256 HEX (the release page lists it)',
              }),
            );
          }
          return r.body;
        },
        {
          retries: opts.retries ?? 4,
          minTimeout: opts.minRetryDelayMs ?? 1000,
          randomize: true,
          signal: opts.signal,
          shouldRetry: ({ error }) => !(error instanceof RelonixError),
        },
      );
    } catch (e) {
      if (e instanceof RelonixError) throw e;
      throw new RelonixError(`could not fetch the checksum ${where}: ${errorMessage(e)}`, {
        kind: 'network',
        hint: `${retryHint(url)}; or pass --sha256 HEX`,
        cause: e,
      });
    }
  }
  const token = text.trim().split(/\s+/)[0] ?? '';
  try {
    return normalizeSha256(token);
  } catch {
    throw new RelonixError(`${where} does not start with a sha256 (found "${token.slice(0, 80)}")`, {
      kind: 'integrity',
      hint: 'pass --sha256 HEX',
    });
  }
}

/** The Nix release relonix installs when no --url is given. */
export const NIX_RELEASE_VERSION = '2.24.10';

export function defaultReleaseUrl(system: string, version: string = NIX_RELEASE_VERSION): string {
  return `https://releases.nixos.org/nix/nix-${version}/nix-${version}-${system}.tar.xz`;
}
