// Nix's base32: its own alphabet (no e, o, u, t) and least-significant-bit-first digit order.
import { StoreFormatError } from './errors.ts';

export const NIX_BASE32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

export function encodedLength(bytes: number): number {
  return Math.ceil((bytes * 8) / 5);
}

export function toNixBase32(bytes: Uint8Array): string {
  const len = encodedLength(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = ((bytes[i] ?? 0) >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0);
    out += NIX_BASE32_ALPHABET[c & 0x1f];
  }
  return out;
}

export function fromNixBase32(s: string, byteLength = Math.floor((s.length * 5) / 8)): Buffer {
  if (s.length !== encodedLength(byteLength)) {
    throw new StoreFormatError(`nix-base32 string "${s}" has length ${s.length}, expected ${encodedLength(byteLength)}`);
  }
  const out = Buffer.alloc(byteLength);
  for (let n = 0; n < s.length; n++) {
    const c = s[s.length - n - 1]!;
    const digit = NIX_BASE32_ALPHABET.indexOf(c);
    if (digit < 0) throw new StoreFormatError(`invalid character "${c}" in nix-base32 string "${s}"`);
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] = (out[i]! | (digit << j)) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < byteLength) out[i + 1] = (out[i + 1]! | carry) & 0xff;
    else if (carry) throw new StoreFormatError(`nix-base32 string "${s}" does not fit in ${byteLength} bytes`);
  }
  return out;
}

export function isNixBase32(s: string): boolean {
  for (const c of s) if (!NIX_BASE32_ALPHABET.includes(c)) return false;
  return true;
}
