// Hostile input: seeded mutations (byte flips in the header, program headers, dynamic table and
// strings; truncations) of real files. The engine may accept a mutant or refuse it with an
// ElfError; it must never throw anything else (not even a RangeError it then wraps), never hang,
// and patchFile must leave a refused file byte for byte as it was.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ElfError, editElf, parseElf, patchFile, planEdit, readElf, relocateElf, writePlanSync } from '../../src/elf/index.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-fuzz-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SEEDS = ['/usr/bin/true', '/usr/lib/x86_64-linux-gnu/libz.so.1', '/usr/arm-linux-gnueabihf/lib/libdl.so.2', '/usr/s390x-linux-gnu/lib/libdl.so.2'];
const PER_SEED = 200;
const LONG = `/tmp/relonix-fuzz-a-long-prefix/${'s'.repeat(80)}`;

/** mulberry32: a tiny seeded generator, so a failure is reproducible from its index. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x40];

function mutate(orig: Buffer, rand: () => number): Buffer {
  const e = parseElf(orig);
  const kind = Math.floor(rand() * 6);
  if (kind === 0) return Buffer.from(orig.subarray(0, Math.floor(rand() * orig.length)));
  const b = Buffer.from(orig);
  const ent = e.is64 ? 16 : 8;
  const regions: Array<[number, number]> = [
    [0, e.is64 ? 64 : 52],
    [e.phoff, e.phdrs.length * e.phentsize],
    [e.dynOff, (e.dyn.length + 1) * ent],
    [e.strOff, Math.min(e.strSize, 256)],
    [e.shoff, e.shdrs.length * e.shentsize],
  ];
  const [start, len] = regions[kind - 1]!;
  const flips = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < flips; i++) {
    const at = start + Math.floor(rand() * len);
    b[at] = rand() < 0.5 ? INTERESTING[Math.floor(rand() * INTERESTING.length)]! : Math.floor(rand() * 256);
  }
  return b;
}

/** Run fn; only an ElfError raised by the engine's own checks is an acceptable failure. */
function onlyElfError(label: string, fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    assert.ok(err instanceof ElfError, `${label}: threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
    assert.doesNotMatch(err.problem, /^malformed ELF file \(/, `${label}: an unchecked fault reached the guard: ${err.message}`);
    assert.ok(err.message.startsWith('mutant'), `${label}: the message names the file: ${err.message}`);
    return false;
  }
}

test('seeded mutations of real files: only ElfError, and accepted output reads back', () => {
  let refused = 0;
  let accepted = 0;
  for (const [s, seed] of SEEDS.entries()) {
    assert.ok(existsSync(seed), `${seed} is missing (install the libc6 cross packages)`);
    const orig = readFileSync(seed);
    const rand = rng(0x5eed + s);
    for (let i = 0; i < PER_SEED; i++) {
      const m = mutate(orig, rand);
      const label = `mutant ${s}/${i} of ${seed}`;
      const name = `mutant-${s}-${i}`;
      onlyElfError(label, () => readElf(m, name));
      const ok = onlyElfError(label, () => {
        const out = editElf(m, { interpreter: undefined, rpath: `${LONG}/lib` }, name);
        if (out) onlyElfError(`${label} (re-read)`, () => readElf(out, name));
      });
      onlyElfError(label, () => relocateElf(m, (x) => `${LONG}${x}`, name));
      if (ok) accepted++;
      else refused++;
    }
  }
  // Both outcomes must actually occur, or the mutations are not exercising anything.
  assert.ok(refused > 50 && accepted > 50, `refused ${refused}, accepted ${accepted}`);
});

test('patchFile leaves a refused file byte-identical', async () => {
  const orig = readFileSync(SEEDS[0]!);
  const rand = rng(0xf11e);
  let refused = 0;
  for (let i = 0; i < 150; i++) {
    const m = mutate(orig, rand);
    const f = path.join(tmp, `mutant-${i}`);
    writeFileSync(f, m);
    try {
      await patchFile(f, { rpath: `${LONG}/lib` });
    } catch (err) {
      assert.ok(err instanceof ElfError, `mutant ${i}: ${(err as Error).message}`);
      assert.ok(readFileSync(f).equals(m), `mutant ${i}: file changed although patchFile failed`);
      refused++;
    }
  }
  assert.ok(refused > 10, `only ${refused} mutants were refused`);
});

test('the in-place writer of relonix patchelf gives exactly the bytes editElf gives, or leaves the file alone', () => {
  let written = 0;
  for (const [s, seed] of SEEDS.entries()) {
    const orig = readFileSync(seed);
    const rand = rng(0x1a1a + s);
    for (let i = 0; i < 40; i++) {
      const m = mutate(orig, rand);
      const f = path.join(tmp, `inplace-${s}-${i}`);
      writeFileSync(f, m);
      const edits = { interpreter: s === 0 ? `${LONG}/ld.so` : undefined, rpath: `${LONG}/lib` };
      let expected: Buffer | null | undefined;
      try {
        expected = editElf(m, edits, f);
      } catch (err) {
        assert.ok(err instanceof ElfError);
      }
      const work = Buffer.from(m);
      try {
        const plan = planEdit(parseElf(work, f), edits, true);
        if (plan) writePlanSync(f, plan, work);
      } catch (err) {
        assert.ok(err instanceof ElfError, `${f}: ${(err as Error).message}`);
        assert.equal(expected, undefined, `${f}: only the in-place path refused`);
        assert.ok(readFileSync(f).equals(m), `${f}: changed although refused`);
        continue;
      }
      assert.ok(expected !== undefined, `${f}: only editElf refused`);
      assert.ok(readFileSync(f).equals(expected ?? m), `${f}: in-place result differs from editElf`);
      if (expected) written++;
    }
  }
  assert.ok(written > 40, `only ${written} mutants were written`);
});

test('named malformations give a clear ElfError naming the file and the problem', () => {
  const orig = readFileSync(SEEDS[0]!);
  const e = parseElf(orig);
  const cases: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
    ['truncated header', (b) => b.subarray(0, 20), /missing ELF header/],
    ['not ELF', () => Buffer.from('#!/bin/sh\necho hi\n'.repeat(10)), /not an ELF executable/],
    ['program headers past the end', (b) => b.subarray(0, e.phoff + 10), /program header table out of bounds/],
    ['zero-size string table', (b) => setDyn(b, e, 10 /* DT_STRSZ */, 0), /zero size/],
    ['string table outside the file', (b) => setDyn(b, e, 5 /* DT_STRTAB */, 0x7fff0000), /string table .* outside/],
    ['section headers past the end', (b) => b.subarray(0, b.length - 10), /section header table out of bounds/],
  ];
  for (const [what, make, re] of cases) {
    const m = make(Buffer.from(orig));
    assert.throws(
      () => editElf(m, { rpath: '/x' }, 'bad.elf'),
      (err: unknown) => err instanceof ElfError && re.test(err.message) && err.message.startsWith('bad.elf: '),
      what,
    );
  }
  // A static program: no dynamic section to carry a RUNPATH.
  assert.throws(() => editElf(withoutDynamic(Buffer.from(orig), e), { rpath: '/x' }, 'static'), /no dynamic section/);
});

function setDyn(b: Buffer, e: ReturnType<typeof parseElf>, tag: number, val: number): Buffer {
  const i = e.dyn.findIndex((d) => d.tag === tag);
  b.writeBigUInt64LE(BigInt(val), e.dynOff + i * 16 + 8);
  return b;
}

function withoutDynamic(b: Buffer, e: ReturnType<typeof parseElf>): Buffer {
  b.writeUInt32LE(0 /* PT_NULL */, e.phoff + e.dynIndex * e.phentsize);
  return b;
}
