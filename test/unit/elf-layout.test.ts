// The layout's 64-bit words: exact in a Number below 2^53, and IA-64's region addresses (text at
// 0x4000…, data at 0x6000…) carried as region × 2^51 + offset so that they stay exact too.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EI, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, IA64_REGION, IDENT_SIZE, identLayout } from '../../src/elf/layout.ts';

/** An ELF64 header of `machine` whose e_entry holds `entry`, in either byte order. */
function header(machine: number, entry: bigint, le = true): Buffer {
  const b = Buffer.alloc(64);
  b.set([0x7f, 0x45, 0x4c, 0x46]);
  b[EI.CLASS] = ELFCLASS64;
  b[EI.DATA] = le ? ELFDATA2LSB : ELFDATA2MSB;
  if (le) {
    b.writeUInt16LE(machine, IDENT_SIZE + 2);
    b.writeBigUInt64LE(entry, IDENT_SIZE + 8);
  } else {
    b.writeUInt16BE(machine, IDENT_SIZE + 2);
    b.writeBigUInt64BE(entry, IDENT_SIZE + 8);
  }
  return b;
}

test('IA-64 words: region addresses read exactly as region x 2^51 + offset and are written back byte for byte', () => {
  for (const le of [true, false]) {
    for (const [word, compact] of [
      [0x4000000000000280n, 2 * IA64_REGION + 0x280],
      [0x60000fffffffe430n, 3 * IA64_REGION + 0xfffffffe430],
      [0x1234n, 0x1234],
    ] as const) {
      const buf = header(50, word, le);
      const l = identLayout(buf)!;
      const io = l.io(buf);
      assert.equal(l.ehdr.get(io, IDENT_SIZE, 'entry'), compact, `0x${word.toString(16)}`);
      const copy = Buffer.from(buf);
      l.ehdr.set(l.io(copy), IDENT_SIZE, 'entry', compact + 0x10);
      l.ehdr.set(l.io(copy), IDENT_SIZE, 'entry', compact);
      assert.deepEqual(copy, buf, 'written back as it was read');
      l.ehdr.set(l.io(copy), IDENT_SIZE, 'entry', compact + 0x10000);
      const written = le ? copy.readBigUInt64LE(IDENT_SIZE + 8) : copy.readBigUInt64BE(IDENT_SIZE + 8);
      assert.equal(written, word + 0x10000n, 'arithmetic inside a region is plain addition');
    }
  }
  // another machine's words are plain numbers
  const x86 = header(62, 0x401000n);
  const l = identLayout(x86)!;
  assert.equal(l.ehdr.get(l.io(x86), IDENT_SIZE, 'entry'), 0x401000);
});
