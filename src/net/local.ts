// What a download does when there is nothing to fetch: a local path or file:// URL is copied, with
// the same checksum rule as a download; and how a finished part becomes the file.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errnoWords, errorMessage, RelonixError } from '../util/errors.ts';
import { mib } from '../util/format.ts';
import type { BytesProgress } from '../util/progress.ts';

/** Local paths and file:// URLs are copied, not fetched. */
export function isLocalSource(url: string): boolean {
  return url.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:/i.test(url);
}

export function localSourcePath(url: string): string {
  if (!url.startsWith('file:')) return path.resolve(url);
  try {
    return fileURLToPath(url);
  } catch (e) {
    throw notALocalFileUrl(url, e);
  }
}

/**
 * The local file a --url names, checked: it exists and is a regular file (a device such as
 * /dev/zero, a pipe or a directory never ends or never was a tarball). Returns its path and size.
 */
export async function localSource(url: string): Promise<{ file: string; size: number }> {
  const file = localSourcePath(url);
  let st: Stats;
  try {
    st = await fs.stat(file);
  } catch (e) {
    throw tarballUnreadable(file, e);
  }
  if (!st.isFile()) {
    const what = st.isDirectory() ? 'a directory' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isFIFO() ? 'a pipe' : 'not a regular file';
    throw tarballNotAFile(file, what);
  }
  return { file, size: st.size };
}

/** A file:// URL that names no local file (a host, a bad escape). */
export function notALocalFileUrl(url: string, cause: unknown): RelonixError {
  return new RelonixError(`${url} is not a local file's URL: ${errorMessage(cause)}`, {
    kind: 'usage',
    hint: 'write a local file as file:///absolute/path (three slashes: no host) or as a plain path; a file on another host as an http(s):// URL',
    cause,
  });
}

/** A local --url the system will not let relonix look at (missing, no permission). */
export function tarballUnreadable(file: string, cause: unknown): RelonixError {
  return new RelonixError(`the tarball ${file} cannot be read: ${errnoWords(cause)}`, {
    kind: 'usage',
    hint: 'pass an existing file, a file:// URL or an http(s) URL as --url',
    cause,
  });
}

/** A local --url that is a directory, a device or a pipe: never a tarball, and a device never ends. */
export function tarballNotAFile(file: string, what: string): RelonixError {
  return new RelonixError(`the tarball ${file} is ${what}, not a regular file`, {
    kind: 'usage',
    hint: 'pass the path of the tarball file itself (nix-<version>-<system>.tar.xz)',
  });
}

/** Official Nix tarballs are under 100 MB: no download takes more than this unless raised. */
export const DEFAULT_MAX_DOWNLOAD = 256 * 1024 * 1024;

export function retryHint(url: string): string {
  return `check the network path to ${new URL(url).host}; running the same command again resumes the partial download (or download the file yourself and pass its path as --url)`;
}

/** A file bigger than any Nix tarball: the wrong URL, or one for which the bound must be raised. */
export function tooBig(url: string, bytes: number | undefined, max: number): RelonixError {
  const size = bytes === undefined ? `sends more than ${mib(max)} without announcing a size` : `is ${mib(bytes)}`;
  return new RelonixError(`${url} ${size}: more than the ${mib(max)} a download may take (no Nix tarball is that big)`, {
    kind: 'usage',
    hint: 'check the URL; if the file really is that big, raise the bound with --max-download MIB',
  });
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
  onProgress?: (p: BytesProgress) => void;
  maxBytes?: number;
  onSize?: (total: number, have: number) => Promise<void>;
}

export async function copyLocal(opts: CopyOptions, expected: string | undefined): Promise<{ path: string; sha256: string; bytes: number; resumed: false }> {
  const { file: src, size: total } = await localSource(opts.url);
  if (total > (opts.maxBytes ?? Infinity)) throw tooBig(opts.url, total, opts.maxBytes ?? Infinity);
  await opts.onSize?.(total, 0);
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
