// Byte searches that the hot loops of relocation, restore and translation share.

/**
 * Node's Buffer.indexOf finds a needle of up to 7 bytes by scanning for its first byte (memchr), and
 * a longer one with Boyer-Moore-Horspool, which is 4-6x slower on binaries: `/nix/store` in the 64
 * ELF files of the 2.26 fixture (52 MB) took 18 ms, `/nix/st` 2.5 ms. So a longer needle is found by
 * its first 7 bytes, and the rest compared where they match.
 */
const QUICK = 7;

/** The first offset at or after `from` where `needle` (not empty) lies in `buf`, or -1. */
export function indexOfBytes(buf: Uint8Array, needle: Uint8Array, from = 0): number {
  const b = asBuffer(buf);
  if (needle.length <= QUICK) return b.indexOf(needle, from);
  const head = needle.subarray(0, QUICK);
  const last = b.length - needle.length;
  for (let i = b.indexOf(head, from); i !== -1 && i <= last; i = b.indexOf(head, i + 1)) {
    if (b.compare(needle, QUICK, needle.length, i + QUICK, i + needle.length) === 0) return i;
  }
  return -1;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
