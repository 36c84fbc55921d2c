// The ELF engine editing the buffer it is given (the unpack's relocation, whose buffers are its
// own): over real files, the file it makes (the edited buffer, zeros, the appended segment) is byte
// for byte the one the copying engine makes, and the relocator's report is the same; a file it
// refuses or leaves alone is not touched.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ownStoreRelocator, relocateElf, relocateElfInPlace, storeRelocator } from '../../src/elf/index.ts';
import { planFile } from '../../src/store/relocate-text.ts';
import { elfFiles, LONG_PREFIX } from '../helpers/elf.ts';

/** Moves the interpreter and search paths under a longer prefix, so every file needs room it lacks. */
const map = (s: string) => s.replaceAll('/lib', `${LONG_PREFIX}/lib`);

/** The whole file an in-place edit stands for. */
function whole(buf: Buffer, r: ReturnType<typeof relocateElfInPlace>): Buffer | null {
  if (r === null || Buffer.isBuffer(r)) return r;
  if (!r.appended) return buf;
  return Buffer.concat([buf, Buffer.alloc(r.appended.at - buf.length), r.appended.bytes]);
}

const files = elfFiles(['/usr/bin', '/usr/lib/x86_64-linux-gnu'], 8 << 20).filter((_, i) => i % 7 === 0);

test('ELF in place: the same file as the copying engine makes, over real files', () => {
  assert.ok(files.length >= 30, `a corpus of ELF files (found ${files.length})`);
  let inPlace = 0;
  for (const f of files) {
    const orig = readFileSync(f);
    const copied = relocateElf(Buffer.from(orig), map, f);
    const mine = Buffer.from(orig);
    const got = relocateElfInPlace(mine, map, f);
    if (got !== null && !Buffer.isBuffer(got)) inPlace++;
    const made = whole(mine, got);
    if (copied === null) {
      assert.equal(made, null, f);
      assert.ok(mine.equals(orig), `${f}: left alone, not touched`);
    } else assert.ok(made?.equals(copied), `${f}: the same bytes as relocateElf`);
  }
  assert.ok(inPlace > files.length / 2, `most files are edited where they lie (${inPlace} of ${files.length})`);
});

test('ELF in place: the relocator reports the same, and a refused file is untouched', () => {
  // the interpreter moves: every file changes
  const from = '/lib64';
  const to = `${LONG_PREFIX}/lib64`;
  for (const f of files.slice(0, 40)) {
    const orig = readFileSync(f);
    const a = planFile(Buffer.from(orig), from, to, storeRelocator, f);
    const mine = Buffer.from(orig);
    const b = planFile(mine, from, to, ownStoreRelocator, f);
    assert.ok(a.elfPatched && b.elfPatched, f);
    assert.deepEqual(b.unrewritable, a.unrewritable, f);
    const made = b.appended ? whole(b.content!, { inPlace: true, appended: b.appended }) : b.content;
    assert.ok(made === a.content || made?.equals(a.content!), `${f}: the same content`);
  }
  // cut short after its headers: the engine refuses it, and the buffer is as it was
  const cut = Buffer.from(readFileSync(files[0]!).subarray(0, 200));
  const before = Buffer.from(cut);
  const r = ownStoreRelocator(cut, map, 'cut');
  assert.ok(r !== null && 'refused' in r, 'a file cut short is refused');
  assert.ok(cut.equals(before));
});
