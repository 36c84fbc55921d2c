import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { fromNixBase32 } from '../store/nixbase32.ts';
import { RelonixError } from '../util/errors.ts';

/**
 * A sha256 in any notation people paste — hex (releases' `.sha256` files), nix-base32
 * (`nix-prefetch-url`), `sha256:`-prefixed, or SRI `sha256-<base64>` — as lowercase hex.
 */
export function normalizeSha256(input: string, what = 'sha256'): string {
  let s = input.trim();
  if (s.startsWith('sha256-')) {
    const raw = Buffer.from(s.slice(7), 'base64');
    if (raw.length === 32) return raw.toString('hex');
  }
  if (s.startsWith('sha256:')) s = s.slice(7);
  if (/^[0-9a-fA-F]{64}$/.test(s)) return s.toLowerCase();
  if (s.length === 52) {
    try {
      return fromNixBase32(s, 32).toString('hex');
    } catch {
      // fall through to the error below
    }
  }
  throw notASha256(input, what);
}

/** A checksum given that is no sha256 in any notation relonix reads. */
export function notASha256(input: string, what = 'sha256'): RelonixError {
  return new RelonixError(`"${input}" is not a ${what}: expected 64 hex digits, 52 nix-base32 characters or sha256-<base64>`, {
    kind: 'usage',
    hint: 'copy the checksum from the release page or its .sha256 file',
  });
}

export async function sha256OfFile(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
