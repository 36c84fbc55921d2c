// Layouts that break on other machines and kernels than this one:
// - a new PT_LOAD keeps the alignment the file was linked for, up to the largest page its machine
//   runs: a library linked for 64 KiB pages stays loadable on a 64 KiB-page kernel even when a
//   smaller --page-size is asked for;
// - kernels before 5.18 (RHEL 7 and 8) set AT_PHDR to load address + e_phoff. qemu-user does the
//   same, so a program that runs under qemu-x86_64 has its header table where they look. Programs
//   with a .bss too large to pad the new segment up to, in layouts with and without room after the
//   first segment, must run there; big-endian 64 KiB-page PIEs (ppc64, ppc) must keep the rule.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { relonixPatchelf } from '../helpers/cli.ts';
import { assertPhdrInvariant, dynamicSymbols, programHeaders, readelf } from '../helpers/elf.ts';
import { buildElf } from '../helpers/elf-build.ts';
import { gcc, requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-layout-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SRC = path.join(tmp, 'src');
const LONG = path.join(tmp, 'a-store-dir-much-longer-than-the-one-these-files-were-built-for/0123456789abcdfghijklmnpqrsvwxyz-glibc/lib');
const INTERP = path.join(LONG, 'ld-linux-x86-64.so.2');

function loads(file: string): ReturnType<typeof programHeaders>['segments'] {
  return programHeaders(file).segments.filter((s) => s.type === 'LOAD');
}

before(() => {
  requireTool('gcc');
  requireTool('readelf');
  mkdirSync(SRC);
  mkdirSync(LONG, { recursive: true });
  symlinkSync('/lib64/ld-linux-x86-64.so.2', INTERP);
});

test('an aarch64 library linked for 64 KiB pages keeps 64 KiB alignment under --page-size 4096, and libc still runs', () => {
  requireTool('qemu-aarch64-static');
  const lib = '/usr/aarch64-linux-gnu/lib';
  assert.ok(existsSync(`${lib}/libc.so.6`), 'install libc6-arm64-cross');
  const dir = path.join(tmp, 'aarch64');
  mkdirSync(dir);
  for (const name of ['libc.so.6', 'libm.so.6']) {
    const f = path.join(dir, name);
    copyFileSync(`${lib}/${name}`, f);
    assert.ok(
      loads(f).every((s) => s.align === 0x10000),
      `${name} was linked with -z max-page-size=65536`,
    );
    const symbols = dynamicSymbols(f);
    const r = relonixPatchelf(['--page-size', '4096', '--set-rpath', `${dir}/${'r'.repeat(200)}:${lib}`, f]);
    assert.equal(r.status, 0, r.stderr);
    const after = loads(f);
    assert.equal(after.length, loads(`${lib}/${name}`).length + 1, 'one segment added');
    for (const s of after) {
      assert.equal(s.align, 0x10000, `${name}: every PT_LOAD aligned to 64 KiB`);
      assert.equal((s.vaddr - s.offset) % 0x10000, 0, `${name}: offset and address agree modulo 64 KiB`);
    }
    assert.equal(readelf(f).stderr, '');
    assert.equal(dynamicSymbols(f), symbols);
    assertPhdrInvariant(f);
  }
  const ok = run('qemu-aarch64-static', ['-L', '/usr/aarch64-linux-gnu', path.join(dir, 'libc.so.6')]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /GNU C Library/);
});

test('an x86-64 library linked with -z max-page-size=65536: the new segment is congruent modulo 64 KiB, aligned to the x86 page', () => {
  writeFileSync(path.join(SRC, 'lib.c'), 'int answer(void) { return 42; }\n');
  const f = path.join(tmp, 'lib64k.so');
  gcc(['-shared', '-fPIC', '-Wl,-z,max-page-size=65536', '-Wl,-z,common-page-size=65536', '-o', f, path.join(SRC, 'lib.c')]);
  assert.ok(loads(f).every((s) => s.align === 0x10000));
  const r = relonixPatchelf(['--set-rpath', `/${'r'.repeat(300)}`, f]);
  assert.equal(r.status, 0, r.stderr);
  const added = loads(f).pop()!;
  // x86-64 kernels run 4 KiB pages only: that is the alignment the loader checks there.
  assert.equal(added.align, 0x1000);
  for (const s of loads(f)) assert.equal((s.vaddr - s.offset) % 0x10000, 0, 'offset and address agree modulo 64 KiB');
  assertPhdrInvariant(f);
});

const BIG =
  '#include <stdio.h>\nstatic char big[64 << 20];\nint main(void) { big[sizeof big - 1] = 1; puts(big[sizeof big - 1] ? "big ok" : "bad"); return 0; }\n';

/** Layouts of a program with a 64 MiB .bss: padding the new segment up past it is out of the question. */
const BIG_LAYOUTS: Record<string, string[]> = {
  // padding after the first segment: the table moves there
  pie: [],
  nopie: ['-no-pie'],
  // the second segment's bytes follow the first's at once: the file shifts to make room
  'pie-packed': ['-Wl,-z,noseparate-code', '-Wl,-z,norelro'],
  'nopie-packed': ['-no-pie', '-Wl,-z,noseparate-code', '-Wl,-z,norelro'],
};

for (const [name, flags] of Object.entries(BIG_LAYOUTS)) {
  test(`a ${name} program with a 64 MiB .bss keeps its header table where old kernels look, and runs there (qemu-x86_64)`, () => {
    requireTool('qemu-x86_64-static');
    writeFileSync(path.join(SRC, 'big.c'), BIG);
    const f = path.join(tmp, `big-${name}`);
    gcc([...flags, '-o', f, path.join(SRC, 'big.c')]);
    const size = statSync(f).size;
    const count = loads(f).length;
    for (const rpath of [`/a/${'x'.repeat(200)}`, `/b/${'y'.repeat(400)}`, `/a/${'x'.repeat(200)}`, '/c']) {
      const r = relonixPatchelf(['--set-interpreter', INTERP, '--set-rpath', rpath, f]);
      assert.equal(r.status, 0, r.stderr);
      const { view, stderr } = readelf(f);
      assert.equal(stderr, '');
      assert.equal(view.interpreter, INTERP);
      assert.equal(view.runpath, rpath);
      assert.equal(loads(f).length, count + 1, 'one segment added, rebuilt by later edits');
      assertPhdrInvariant(f);
      assert.ok(statSync(f).size < size + (1 << 20), 'no padding the size of .bss');
      assert.equal(run(f, []).stdout, 'big ok\n');
      const q = run('qemu-x86_64-static', [f]);
      assert.equal(q.status, 0, `under qemu (AT_PHDR = load address + e_phoff): ${q.stderr}`);
      assert.equal(q.stdout, 'big ok\n');
    }
  });
}

test('big-endian 64 KiB-page programs (ppc64, ppc; PIE and not) keep the rule when a longer interpreter moves them', () => {
  const dir = path.join(tmp, 'ppc');
  mkdirSync(dir);
  const interp = `/a/much/longer/prefix/${'z'.repeat(60)}/lib/ld64.so.1`;
  for (const [machine, is64] of [
    [21, true],
    [20, false],
  ] as const) {
    for (const type of [3, 2] as const) {
      for (const bss of [0x100, 32 << 20]) {
        const f = path.join(dir, `${is64 ? 'ppc64' : 'ppc'}-${type}-${bss}`);
        writeFileSync(
          f,
          buildElf({
            is64,
            le: false,
            machine,
            type,
            page: 0x10000,
            interp: '/lib64/ld64.so.1',
            needed: ['libc.so.6'],
            symbols: ['a_symbol_name', 'another_symbol'],
            bss,
          }),
        );
        assert.equal(readelf(f).stderr, '', `${f}: the built file is clean`);
        assertPhdrInvariant(f);
        const symbols = run('readelf', ['--dyn-syms', '-W', f]).stdout;
        const r = relonixPatchelf(['--set-interpreter', interp, '--set-rpath', `/${'r'.repeat(100)}`, f]);
        assert.equal(r.status, 0, r.stderr);
        const { view, stderr } = readelf(f);
        assert.equal(stderr, '', f);
        assert.equal(view.interpreter, interp, f);
        assert.equal(view.runpath, `/${'r'.repeat(100)}`, f);
        assert.deepEqual(view.needed, ['libc.so.6'], f);
        assert.equal(run('readelf', ['--dyn-syms', '-W', f]).stdout, symbols, `${f}: symbols unchanged`);
        for (const s of loads(f)) assert.equal(s.align, 0x10000, `${f}: 64 KiB alignment`);
        assertPhdrInvariant(f);
        assert.ok(statSync(f).size < 1 << 20, `${f}: no padding the size of .bss`);
      }
    }
  }
});
