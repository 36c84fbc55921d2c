// Where Nix releases are, and the checksum each one publishes beside itself.
import { promises as fs } from 'node:fs';
import { RelonixError } from '../util/errors.ts';
import { POLICY, type RetryOptions, retry, spent } from '../util/retry.ts';
import { httpFailure, request } from './http.ts';
import { isLocalSource, localSourcePath, retryHint } from './local.ts';
import { normalizeSha256 } from './sha256.ts';

/** The Nix release relonix installs when no --url is given. */
export const NIX_RELEASE_VERSION = '2.24.10';

export function defaultReleaseUrl(system: string, version: string = NIX_RELEASE_VERSION): string {
  return `https://releases.nixos.org/nix/nix-${version}/nix-${version}-${system}.tar.xz`;
}

async function readLocal(url: string): Promise<{ text: string; where: string }> {
  const where = `${localSourcePath(url)}.sha256`;
  try {
    return { text: await fs.readFile(where, 'utf8'), where };
  } catch {
    throw noChecksumFile(url, where);
  }
}

async function readRemote(url: string, opts: RetryOptions & { headers?: Record<string, string> }): Promise<{ text: string; where: string }> {
  const u = new URL(url);
  u.pathname += '.sha256';
  const where = u.toString();
  try {
    const text = await retry(
      async () => {
        const r = await request(where, { headers: opts.headers, signal: opts.signal, idleMs: 60_000 });
        if (r.status >= 300) throw await httpFailure(r, `no checksum for ${url}: GET ${where}`, 'pass --sha256 HEX (the release page lists it)');
        return (await r.buffer()).toString('utf8');
      },
      { ...opts, retries: opts.retries ?? POLICY.lookup.retries },
    );
    return { text, where };
  } catch (e) {
    throw spent(e, `could not fetch the checksum ${where}`, `${retryHint(url)}; or pass --sha256 HEX`);
  }
}

/**
 * The expected sha256 of a release file, read from `<url>.sha256` as releases.nixos.org publishes it
 * (first token; hex, or nix-base32 which is converted).
 */
export async function resolveSha256(url: string, opts: RetryOptions & { headers?: Record<string, string> } = {}): Promise<string> {
  const { text, where } = isLocalSource(url) ? await readLocal(url) : await readRemote(url, opts);
  const token = text.trim().split(/\s+/)[0] ?? '';
  try {
    return normalizeSha256(token);
  } catch {
    throw badChecksumFile(where, token);
  }
}

/** A local tarball without --sha256 and without a <file>.sha256 beside it: nothing to check it against. */
export function noChecksumFile(url: string, where: string): RelonixError {
  return new RelonixError(`no checksum for ${url}: ${where} does not exist`, {
    kind: 'usage',
    hint: 'pass --sha256 HEX, or put the checksum next to the file as <file>.sha256',
  });
}

/** A <file>.sha256 that holds no sha256: the tarball cannot be checked against it. */
export function badChecksumFile(where: string, token: string): RelonixError {
  return new RelonixError(`${where} does not start with a sha256 (found "${token.slice(0, 80)}")`, {
    kind: 'integrity',
    hint: 'pass --sha256 HEX',
  });
}
