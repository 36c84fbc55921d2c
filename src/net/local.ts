// What a download does when there is nothing to fetch: a local path or file:// URL is copied, with
// the same checksum rule as a download; and how a finished part becomes the file.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RelonixError } from '../util/errors.ts';

/** Local paths and file:// URLs are copied, not fetched. */
export function isLocalSource(url: string): boolean {
  return url.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:/i.test(url);
}

export function localSourcePath(url: string): string {
  return url.startsWith('file:') ? fileURLToPath(url) : path.resolve(url);
}

export function retryHint(url: string): string {
  return `check the network path to ${new URL(url).host}; running the same command again resumes the partial download (or download the file yourself and pass its path as --url)`;
}

export function checksumError(
  url: string,
  expected: string,
  actual: string,
  hint = 'the file is corrupt or the expected checksum is wrong; the partial download was deleted, so running again fetches it afresh',
): RelonixError {
  return new RelonixError(`checksum mismatch for ${url}: expected sha256 ${expected}, got ${actual}`, { kind: 'integrity', hint });
}

/** The part becomes the file if its checksum is the expected one; else it goes, with its sidecar. */
export async function finish(part: string, dest: string, url: string, actual: string, expected: string | undefined): Promise<void> {
  if (expected && actual !== expected) {
    await fs.rm(part, { force: true });
    await fs.rm(`${part}.json`, { force: true });
    throw checksumError(url, expected, actual);
  }
  await fs.rename(part, dest);
  await fs.rm(`${part}.json`, { force: true });
}

/** What copying needs of a download's options (download.ts hands its own). */
interface CopyOptions {
  url: string;
  dest: string;
  signal?: AbortSignal;
  onProgress?: (p: { received: number; total?: number }) => void;
}

export async function copyLocal(opts: CopyOptions, expected: string | undefined): Promise<{ path: string; sha256: string; bytes: number; resumed: false }> {
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
