import { StoreFormatError } from './errors.ts';
import { fromNixBase32, toNixBase32 } from './nixbase32.ts';

// The `nix-store --load-db` / `--dump-db` registration format, one record per path.
export interface RegInfo {
  path: string;
  narHash: string;
  narSize: number;
  deriver: string;
  references: string[];
}

export function parseRegInfo(text: string, source = '.reginfo'): RegInfo[] {
  if (text === '') return [];
  // every line, the last one included, ends in a newline
  const lines = (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n');
  const out: RegInfo[] = [];
  let i = 0;
  const next = (what: string) => {
    if (i >= lines.length) throw new StoreFormatError(`${source}: truncated, expected ${what} at line ${i + 1}`);
    return lines[i++]!;
  };
  while (i < lines.length) {
    const p = next('a store path');
    if (!p.startsWith('/')) throw new StoreFormatError(`${source}: line ${i}: "${p}" is not an absolute store path`);
    const narHash = next('a NAR hash');
    const sizeText = next('a NAR size');
    const narSize = Number(sizeText);
    if (!/^\d+$/.test(sizeText) || !Number.isSafeInteger(narSize)) throw new StoreFormatError(`${source}: line ${i}: bad NAR size "${sizeText}"`);
    const deriver = next('a deriver');
    const countText = next('a reference count');
    const count = Number(countText);
    if (!/^\d+$/.test(countText) || !Number.isSafeInteger(count)) throw new StoreFormatError(`${source}: line ${i}: bad reference count "${countText}"`);
    const references: string[] = [];
    for (let r = 0; r < count; r++) references.push(next('a reference'));
    out.push({ path: p, narHash, narSize, deriver, references });
  }
  return out;
}

export function formatRegInfo(records: RegInfo[]): string {
  let s = '';
  for (const r of records) {
    s += `${r.path}\n${r.narHash}\n${r.narSize}\n${r.deriver}\n${r.references.length}\n`;
    for (const ref of r.references) s += `${ref}\n`;
  }
  return s;
}

/**
 * The NAR hash field of a record as raw bytes. `nix-store --dump-db` (and so the official
 * tarballs' .reginfo) writes bare base16; narinfo-style `sha256:<nix-base32>` and `sha256:<hex>` occur too.
 */
export function parseNarHashField(field: string): Buffer {
  const body = field.startsWith('sha256:') ? field.slice(7) : field;
  if (/^[0-9a-f]{64}$/.test(body)) return Buffer.from(body, 'hex');
  if (body.length === 52) return fromNixBase32(body, 32);
  throw new StoreFormatError(`"${field}" is not a sha256 NAR hash`);
}

/** Writes a NAR hash in the same notation as an existing field, so rewritten files keep their style. */
export function formatNarHashLike(hash: Buffer, like: string): string {
  if (/^[0-9a-f]{64}$/.test(like)) return hash.toString('hex');
  if (like.startsWith('sha256:') && /^[0-9a-f]{64}$/.test(like.slice(7))) return `sha256:${hash.toString('hex')}`;
  return `sha256:${toNixBase32(hash)}`;
}
