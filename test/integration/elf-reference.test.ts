// The ELF engine where patchelf is the reference, on programs built here with Debian's cross tools:
// IA-64 programs (text in region 2 at 0x4000…, data in region 3 at 0x6000…, far above 2^53), one
// of them linked by an ld script with its data at the top of what a region maps, so that no address
// space is left above its segments; and 32-bit PowerPC PIE programs from gcc, run under qemu. readelf
// reads every result and patchelf reads back what was set; patchelf's own edit of the same file is
// done beside ours (it finds room too) and, where qemu can run it, runs like ours.

import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { relonixPatchelf } from '../helpers/cli.ts';
import { assertPhdrInvariant, LONG_PREFIX, readelf } from '../helpers/elf.ts';
import { requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-reference-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const INTERP = `${LONG_PREFIX}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc-2.40/lib/ld-linux-ia64.so.2`;
const RUNPATH = `${LONG_PREFIX}/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-foo/lib`;

/** One segment as readelf -lW prints it, addresses kept as BigInt (IA-64's are past 2^53). */
interface Seg {
  type: string;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
  line: string;
}

function segments(file: string): { entry: string; phoff: bigint; segs: Seg[] } {
  const r = run('readelf', ['-h', '-l', '-W', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', `readelf reads ${file} without a warning`);
  const segs: Seg[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+([A-Z_]+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+) 0x([0-9a-f]+) .{3} 0x([0-9a-f]+)$/.exec(line);
    if (m) {
      const [, type, offset, vaddr, filesz, memsz, align] = m.map((x, i) => (i === 1 ? x : `0x${x}`)) as string[];
      segs.push({
        type: type!,
        offset: BigInt(offset!),
        vaddr: BigInt(vaddr!),
        filesz: BigInt(filesz!),
        memsz: BigInt(memsz!),
        align: BigInt(align!),
        line: line.trim(),
      });
    }
  }
  const entry = /Entry point address:\s+(\S+)/.exec(r.stdout)![1]!;
  const phoff = BigInt(/Start of program headers:\s+(\d+)/.exec(r.stdout)![1]!);
  return { entry, phoff, segs };
}

/** What a valid layout keeps, checked in exact 64-bit arithmetic: sorted, disjoint, congruent PT_LOADs, and PT_PHDR where old kernels look. */
function assertLayout(file: string): Seg[] {
  const { phoff, segs } = segments(file);
  const loads = segs.filter((s) => s.type === 'LOAD');
  for (let i = 0; i < loads.length; i++) {
    const s = loads[i]!;
    assert.equal((s.vaddr - s.offset) % s.align, 0n, `${file}: ${s.line} is congruent modulo its alignment`);
    const next = loads[i + 1];
    if (next) assert.ok(s.vaddr + s.memsz <= next.vaddr, `${file}: PT_LOADs sorted and disjoint (${s.line} / ${next.line})`);
  }
  const first = loads[0]!;
  const phdr = segs.find((s) => s.type === 'PHDR')!;
  assert.equal(phdr.vaddr, first.vaddr - first.offset + phoff, `${file}: PT_PHDR is where kernels before 5.18 look`);
  return loads;
}

/** The dynamic entries readelf prints, but those an edit of the interpreter and RUNPATH changes. */
function keptDynamic(file: string): string[] {
  const r = run('readelf', ['-d', '-W', file]);
  assert.equal(r.stderr, '');
  return r.stdout.split('\n').filter((l) => /^\s+0x/.test(l) && !/\((STRTAB|STRSZ|RUNPATH|RPATH)\)/.test(l));
}

const IA64_LIB = '  .text\n  .global foo\n  .proc foo\nfoo:\n  br.ret.sptk.many b0\n  .endp foo\n';
const IA64_MAIN = '  .text\n  .global _start\n  .proc _start\n_start:\n  br.call.sptk.many b0 = foo\n  break 0\n  .endp _start\n';
/** Where IA-64 Linux maps a region's top (16 KiB pages: 2^44 bytes less a page); the data goes just below. */
const REGION3_TOP = 0x6000000000000000n + (1n << 44n) - 0x10000n;

function ia64Programs(): { plain: string; top: string } {
  const as = requireTool('ia64-linux-gnu-as', 'binutils-ia64-linux-gnu');
  const ld = requireTool('ia64-linux-gnu-ld', 'binutils-ia64-linux-gnu');
  const dir = path.join(tmp, 'ia64');
  mkdirSync(dir);
  const file = (n: string) => path.join(dir, n);
  writeFileSync(file('lib.s'), IA64_LIB);
  writeFileSync(file('main.s'), IA64_MAIN);
  const ok = (cmd: string, args: string[]) => {
    const r = run(cmd, args, { cwd: dir });
    assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  ok(as, ['-o', 'lib.o', 'lib.s']);
  ok(ld, ['-shared', '-soname', 'libfoo.so', '-o', 'libfoo.so', 'lib.o']);
  ok(as, ['-o', 'main.o', 'main.s']);
  const link = ['main.o', '-L.', '-lfoo', '--dynamic-linker', '/lib/ld-linux-ia64.so.2', '-rpath', '/old/lib'];
  ok(ld, ['-o', 'plain', ...link]);
  // the default script with the data segment moved from the bottom of region 3 to its top
  const script = ok(ld, ['--verbose']).split(/^={10,}$/m)[1]!;
  const dataAt = '. = 0x6000000000000000 + (. & (CONSTANT (MAXPAGESIZE) - 1));';
  assert.ok(script.includes(dataAt), 'the default ld script places the data segment in region 3');
  writeFileSync(file('top.ld'), script.replace(dataAt, `. = 0x${(REGION3_TOP - 0x10000n).toString(16)} + (. & (CONSTANT (MAXPAGESIZE) - 1));`));
  ok(ld, ['-T', 'top.ld', '-o', 'top', ...link]);
  return { plain: file('plain'), top: file('top') };
}

test('IA-64 programs, one with no address space left above its data: relonix finds room, every address stays exact, and patchelf and readelf agree', () => {
  requireTool('patchelf');
  const { plain, top } = ia64Programs();
  for (const [name, orig] of [
    ['plain', plain],
    ['top', top],
  ] as const) {
    const before = segments(orig);
    const oldLoads = before.segs.filter((s) => s.type === 'LOAD' || s.type === 'DYNAMIC');
    if (name === 'top')
      assert.ok(
        oldLoads.some((s) => s.vaddr + s.memsz > REGION3_TOP - 0x10000n),
        'the data is at the top of region 3',
      );
    const ours = `${orig}.ours`;
    const theirs = `${orig}.theirs`;
    copyFileSync(orig, ours);
    copyFileSync(orig, theirs);
    const r = relonixPatchelf(['--set-interpreter', INTERP, '--set-rpath', RUNPATH, ours]);
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    const p = run('patchelf', ['--set-interpreter', INTERP, '--set-rpath', RUNPATH, theirs]);
    assert.equal(p.status, 0, `patchelf finds room in ${name}: ${p.stderr}`);
    for (const f of [ours, theirs]) {
      assert.equal(run('patchelf', ['--print-interpreter', f]).stdout, `${INTERP}\n`, f);
      assert.equal(run('patchelf', ['--print-rpath', f]).stdout, `${RUNPATH}\n`, f);
      assert.deepEqual(readelf(f).view.needed, ['libfoo.so'], f);
    }
    const after = segments(ours);
    assert.equal(after.entry, before.entry, `${name}: the entry point is exact`);
    assert.deepEqual(keptDynamic(ours), keptDynamic(orig), `${name}: every other dynamic entry is exact`);
    // every segment the linker made keeps its address, and its size but where it grew over the
    // header table (at its end, no .bss); its file offset may move
    for (const s of oldLoads) {
      assert.ok(
        after.segs.some((t) => t.type === s.type && t.vaddr === s.vaddr && t.memsz >= s.memsz && t.memsz - t.filesz === s.memsz - s.filesz),
        `${name}: ${s.line} is still there`,
      );
    }
    const loads = assertLayout(ours);
    const added = loads.filter((l) => !oldLoads.some((s) => s.type === 'LOAD' && s.vaddr === l.vaddr));
    assert.equal(added.length, 1, `${name}: one segment added`);
    const seg = added[0]!;
    const region = seg.vaddr >> 61n;
    assert.ok(seg.vaddr + seg.memsz - (region << 61n) <= 1n << 44n, `${name}: the new segment is inside what its region maps`);
    assert.equal(region, name === 'top' ? 2n : 3n, `${name}: above the data where there is room, else in the gap after the text`);
    // a second, longer edit rebuilds that segment instead of stacking another
    const again = relonixPatchelf(['--set-rpath', `${RUNPATH}:${RUNPATH}/again`, ours]);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(assertLayout(ours).length, loads.length, `${name}: no second added segment`);
    assert.equal(run('patchelf', ['--print-rpath', ours]).stdout, `${RUNPATH}:${RUNPATH}/again\n`);
  }
});

test("32-bit PowerPC PIE programs from gcc (64 KiB pages, and 4 KiB pages with a 600 MiB .bss): the header table kept where AT_PHDR points, and ours and patchelf's run under qemu", () => {
  const cc = requireTool('powerpc-linux-gnu-gcc', 'gcc-powerpc-linux-gnu libc6-dev-powerpc-cross');
  const qemu = requireTool('qemu-ppc-static');
  const dir = path.join(tmp, 'ppc');
  const libDir = path.join(dir, `${'long/'.repeat(12)}lib`);
  mkdirSync(libDir, { recursive: true });
  cpSync('/usr/powerpc-linux-gnu/lib', libDir, { recursive: true });
  writeFileSync(path.join(dir, 'small.c'), '#include <stdio.h>\nint main(void) { puts("hi from ppc"); return 0; }\n');
  writeFileSync(
    path.join(dir, 'big.c'),
    '#include <stdio.h>\nstatic char big[600 << 20];\nint main(int c, char **v) { big[c] = 1; puts("hi from ppc"); return big[2]; }\n',
  );
  for (const [name, flags] of [
    ['small', []],
    ['big', ['-Wl,-z,max-page-size=0x1000']],
  ] as const) {
    const orig = path.join(dir, name);
    const b = run(cc, ['-fPIE', '-pie', '-O1', ...flags, '-o', orig, `${orig}.c`]);
    assert.equal(b.status, 0, b.stderr);
    for (const [who, edit] of [
      ['ours', relonixPatchelf],
      ['theirs', (args: string[]) => run('patchelf', args)],
    ] as const) {
      const f = `${orig}.${who}`;
      copyFileSync(orig, f);
      const r = edit(['--set-interpreter', path.join(libDir, 'ld.so.1'), '--set-rpath', libDir, f]);
      assert.equal(r.status, 0, `${who} ${name}: ${r.stderr}`);
      assert.equal(readelf(f).stderr, '', f);
      assert.equal(run('patchelf', ['--print-interpreter', f]).stdout, `${path.join(libDir, 'ld.so.1')}\n`);
      assertPhdrInvariant(f);
      const out = run(qemu, [f]);
      assert.equal(out.status, 0, `${who} ${name} runs: ${out.stderr}`);
      assert.equal(out.stdout, 'hi from ppc\n');
    }
  }
});
