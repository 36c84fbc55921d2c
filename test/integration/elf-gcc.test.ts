// Programs and libraries compiled here with gcc in the layouts that trip ELF rewriters: non-PIE,
// PIE, no separate code segment, 64 KiB max page size, no RUNPATH yet, DT_RPATH, a library with a
// long RUNPATH to shrink and remove, a dynamic table with no spare slot. Each one is rewritten to a
// longer interpreter and a RUNPATH naming the moved library, and must then load that library.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { editElf, parseElf, planEdit, readElf, relocateElf } from '../../src/elf/index.ts';
import { Io } from '../../src/elf/reader.ts';
import { relonixPatchelf } from '../helpers/cli.ts';
import { readelf } from '../helpers/elf.ts';
import { gcc, requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-gcc-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const src = path.join(tmp, 'src');
const built = path.join(tmp, 'built');
// Where the library ends up: longer than where it was linked, as /tmp/nix/store is to /nix/store.
const libDir = path.join(tmp, 'relocated-store-with-a-much-longer-name/0123456789abcdfghijklmnpqrsvwxyz-libgreet-1.0/lib');
const ldDir = path.join(tmp, 'relocated-store-with-a-much-longer-name/abcdfghijklmnpqrsvwxyz0123456789-glibc-2.36/lib');
const INTERP = path.join(ldDir, 'ld-linux-x86-64.so.2');

const VARIANTS: Record<string, string[]> = {
  pie: [],
  nopie: ['-no-pie'],
  noseparate: ['-Wl,-z,noseparate-code'],
  maxpage64k: ['-Wl,-z,max-page-size=65536'],
  nopie64k: ['-no-pie', '-Wl,-z,max-page-size=65536', '-Wl,-z,common-page-size=65536'],
};

before(() => {
  requireTool('gcc');
  mkdirSync(src);
  mkdirSync(built);
  mkdirSync(libDir, { recursive: true });
  mkdirSync(ldDir, { recursive: true });
  symlinkSync('/lib64/ld-linux-x86-64.so.2', INTERP);
  writeFileSync(path.join(src, 'greet.c'), 'const char *greet(void) { return "hello from libgreet"; }\n');
  writeFileSync(path.join(src, 'main.c'), '#include <stdio.h>\nconst char *greet(void);\nint main(void) { puts(greet()); return 0; }\n');
  writeFileSync(path.join(src, 'outer.c'), 'const char *greet(void);\nconst char *outer(void) { return greet(); }\n');
  gcc(['-shared', '-fPIC', '-o', path.join(built, 'libgreet.so'), path.join(src, 'greet.c')]);
  copyFileSync(path.join(built, 'libgreet.so'), path.join(libDir, 'libgreet.so'));
  // The library every program loads is itself grown by a rewrite (a new segment in a shared object).
  const grow = relonixPatchelf(['--set-rpath', `${libDir}:/${'l'.repeat(300)}`, path.join(libDir, 'libgreet.so')]);
  assert.equal(grow.status, 0, grow.stderr);
  assert.equal(readelf(path.join(libDir, 'libgreet.so')).view.loads, readelf(path.join(built, 'libgreet.so')).view.loads + 1);
  for (const [name, flags] of Object.entries(VARIANTS)) {
    gcc([...flags, '-o', path.join(built, name), path.join(src, 'main.c'), `-L${built}`, '-lgreet']);
  }
  gcc(['-o', path.join(built, 'withrunpath'), path.join(src, 'main.c'), `-L${built}`, '-lgreet', `-Wl,-rpath,${built}`]);
  gcc(['-no-pie', '-o', path.join(built, 'withrunpath-nopie'), path.join(src, 'main.c'), `-L${built}`, '-lgreet', `-Wl,-rpath,${built}`]);
  gcc(['-o', path.join(built, 'rpathkind'), path.join(src, 'main.c'), `-L${built}`, '-lgreet', '-Wl,--disable-new-dtags', `-Wl,-rpath,/nix/store/old/lib`]);
});

function fresh(name: string): string {
  const f = path.join(tmp, `${name}-${Math.random().toString(36).slice(2)}`);
  copyFileSync(path.join(built, name), f);
  return f;
}

function loads(file: string): number {
  return readelf(file).view.loads;
}

function runsAndGreets(file: string): void {
  const r = run(file, []);
  assert.equal(r.status, 0, `${file} failed: ${r.stderr}`);
  assert.equal(r.stdout, 'hello from libgreet\n');
}

for (const name of Object.keys(VARIANTS)) {
  test(`${name}: a program with no RUNPATH gets one and a longer interpreter, then finds its library`, () => {
    const f = fresh(name);
    assert.equal(readElf(readFileSync(f)).runpath, undefined);
    // Before: the library is not on any search path, so the program cannot start.
    assert.notEqual(run(f, []).status, 0);
    const r = relonixPatchelf(['--set-interpreter', INTERP, '--set-rpath', libDir, f]);
    assert.equal(r.status, 0, r.stderr);
    const { view, stderr } = readelf(f);
    assert.equal(stderr, '');
    assert.equal(view.interpreter, INTERP);
    assert.equal(view.runpath, libDir);
    runsAndGreets(f);
  });
}

test('repeated edits (A, B, A, shorter, longer) keep one added segment and a bounded size', () => {
  const f = fresh('pie');
  const base = loads(f);
  const sizes: number[] = [];
  const A = `${libDir}:/a/${'x'.repeat(200)}`;
  const B = `/b/${'y'.repeat(400)}:${libDir}`;
  for (const [interp, rpath] of <[string, string][]>[
    [INTERP, A],
    [INTERP, B],
    [INTERP, A],
    ['/lib64/ld-linux-x86-64.so.2', libDir],
    [INTERP, B],
    [INTERP, A],
  ]) {
    const r = relonixPatchelf(['--set-interpreter', interp, '--set-rpath', rpath, f]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(loads(f) <= base + 1, `PT_LOAD count grew to ${loads(f)} (was ${base})`);
    assert.equal(readelf(f).stderr, '');
    assert.equal(run('patchelf', ['--print-rpath', f]).stdout, `${rpath}\n`);
    runsAndGreets(f);
    sizes.push(statSync(f).size);
  }
  assert.equal(sizes[2], sizes[5], 'the same edit twice gives the same size');
  assert.ok(Math.max(...sizes) <= sizes[0]! + 4096, `file keeps growing: ${sizes.join(' ')}`);
});

test('DT_RPATH is kept with --force-rpath, converted without it, and relocateElf keeps the kind', () => {
  const f = fresh('rpathkind');
  assert.equal(readElf(readFileSync(f)).rpath, '/nix/store/old/lib');
  const out = relocateElf(readFileSync(f), (s) => (s === '/nix/store/old/lib' ? libDir : s === '/lib64/ld-linux-x86-64.so.2' ? INTERP : s));
  assert.ok(out);
  writeFileSync(f, out);
  let v = readelf(f).view;
  assert.equal(v.rpath, libDir);
  assert.equal(v.runpath, undefined);
  assert.equal(v.interpreter, INTERP);
  runsAndGreets(f);
  assert.equal(relonixPatchelf(['--force-rpath', '--set-rpath', `${libDir}:/x`, f]).status, 0);
  v = readelf(f).view;
  assert.equal(v.rpath, `${libDir}:/x`);
  assert.equal(relonixPatchelf(['--set-rpath', libDir, f]).status, 0);
  v = readelf(f).view;
  assert.equal(v.runpath, libDir);
  assert.equal(v.rpath, undefined);
  runsAndGreets(f);
});

test('a library with a long RUNPATH: --shrink-rpath and --remove-rpath agree with patchelf, and it still loads', () => {
  requireTool('patchelf');
  const dead = Array.from({ length: 12 }, (_, i) => `${tmp}/no-such-directory-${i}/lib`);
  const longRunpath = [...dead.slice(0, 6), libDir, ...dead.slice(6), '$ORIGIN/../lib'].join(':');
  const outerDir = path.join(tmp, 'outer');
  mkdirSync(outerDir);
  const outer = path.join(outerDir, 'libouter.so');
  gcc(['-shared', '-fPIC', '-o', outer, path.join(src, 'outer.c'), `-L${built}`, '-lgreet', `-Wl,-rpath,${longRunpath}`]);
  assert.equal(readElf(readFileSync(outer)).runpath, longRunpath);
  for (const op of [['--shrink-rpath'], ['--shrink-rpath', '--allowed-rpath-prefixes', '/nonexistent'], ['--remove-rpath'], ['--set-rpath', libDir]]) {
    const ours = path.join(outerDir, 'ours.so');
    const theirs = path.join(outerDir, 'theirs.so');
    copyFileSync(outer, ours);
    copyFileSync(outer, theirs);
    const a = relonixPatchelf([...op, ours]);
    const b = run('patchelf', [...op, theirs]);
    assert.equal(a.status, b.status, op.join(' '));
    assert.equal(a.stdout + a.stderr, b.stdout + b.stderr);
    const va = readelf(ours);
    assert.equal(va.stderr, '');
    const vb = readelf(theirs).view;
    assert.equal(va.view.runpath, vb.runpath, op.join(' '));
    assert.equal(va.view.rpath, vb.rpath, op.join(' '));
    assert.ok(statSync(ours).size <= statSync(outer).size, `${op.join(' ')} must not grow the file`);
  }
  // The shrunk library is loaded by a program through its remaining RUNPATH entry.
  const shrunk = path.join(libDir, '..', 'libouter.so');
  copyFileSync(outer, shrunk);
  assert.equal(relonixPatchelf(['--shrink-rpath', shrunk]).status, 0);
  assert.equal(readElf(readFileSync(shrunk)).runpath, `${libDir}:$ORIGIN/../lib`);
  writeFileSync(path.join(src, 'useouter.c'), '#include <stdio.h>\nconst char *outer(void);\nint main(void) { puts(outer()); return 0; }\n');
  const prog = path.join(tmp, 'useouter');
  gcc(['-o', prog, path.join(src, 'useouter.c'), `-L${path.dirname(shrunk)}`, '-louter', `-Wl,-rpath-link,${built}`]);
  assert.equal(relonixPatchelf(['--set-rpath', path.dirname(shrunk), prog]).status, 0);
  runsAndGreets(prog);
});

/** Cut the dynamic table down to its entries and terminator, so adding an entry must move it. */
function tightenDynamic(file: string): void {
  const buf = readFileSync(file);
  const e = parseElf(buf, file);
  const io = new Io(buf, e.is64, e.le);
  const size = (e.dyn.length + 1) * 16;
  const ph = e.phoff + e.dynIndex * e.phentsize;
  io.w64(ph + 32, size);
  io.w64(ph + 40, size);
  for (const sh of e.shdrs) if (sh.type === 6) io.w64(e.shoff + sh.index * e.shentsize + 32, size);
  writeFileSync(file, buf);
}

test('a dynamic table with no spare slot is moved to the new segment, writable, and the program runs', () => {
  for (const name of ['pie', 'nopie']) {
    const f = fresh(name);
    tightenDynamic(f);
    const e0 = parseElf(readFileSync(f));
    assert.equal(e0.dynSlots, e0.dyn.length + 1);
    const out = editElf(readFileSync(f), { interpreter: INTERP, rpath: libDir }, f);
    assert.ok(out);
    writeFileSync(f, out);
    const e1 = parseElf(readFileSync(f));
    const dyn = e1.phdrs[e1.dynIndex]!;
    assert.notEqual(dyn.offset, e0.phdrs[e0.dynIndex]!.offset, 'the dynamic table moved');
    const home = e1.phdrs.find((p) => p.type === 1 && dyn.vaddr >= p.vaddr && dyn.vaddr < p.vaddr + p.memsz)!;
    assert.ok(home.flags & 2, 'the moved .dynamic lies in a writable segment');
    const { view, stderr } = readelf(f);
    assert.equal(stderr, '');
    assert.equal(view.runpath, libDir);
    runsAndGreets(f);
  }
});

test('a program whose section headers were stripped off is still rewritten and runs', () => {
  const f = fresh('pie');
  const buf = readFileSync(f);
  const e = parseElf(buf);
  const io = new Io(buf, true, true);
  io.w64(40, 0); // e_shoff
  io.w16(60, 0); // e_shnum
  io.w16(62, 0); // e_shstrndx
  const cut = buf.subarray(0, e.shoff);
  const out = editElf(cut, { interpreter: INTERP, rpath: libDir }, f);
  assert.ok(out);
  writeFileSync(f, out);
  renameSync(f, `${f}.x`);
  runsAndGreets(`${f}.x`);
  assert.equal(readElf(readFileSync(`${f}.x`)).runpath, libDir);
});

test('every intermediate state of an in-place write is a working program (crash safety of the write order)', () => {
  for (const name of ['withrunpath', 'withrunpath-nopie']) {
    const f = fresh(name);
    const orig = readFileSync(f);
    const work = Buffer.from(orig);
    const rpath = `${libDir}:/${'w'.repeat(300)}`;
    const plan = planEdit(parseElf(work, f), { interpreter: INTERP, rpath }, true);
    assert.ok(plan?.seg && plan.pre === work, 'a growing edit is written in place');
    // Replay the writes in writePlanSync's order, checking the file after each one.
    const ranges = [...plan.dirty];
    const hdr = ranges.findIndex(([a]) => a < 64);
    if (hdr > 0) ranges.unshift(...ranges.splice(hdr, 1));
    let state = Buffer.concat([orig, Buffer.alloc(plan.off0 - orig.length), plan.seg]);
    const states = [state];
    for (const [a, b] of ranges) {
      state = Buffer.from(state);
      work.copy(state, a, a, b);
      states.push(state);
    }
    assert.ok(states.length >= 3, 'segment, header and at least one in-place write');
    for (const [i, st] of states.entries()) {
      writeFileSync(f, st);
      runsAndGreets(f);
      const v = readElf(st);
      assert.ok(v.interpreter === INTERP || v.interpreter === readElf(orig).interpreter, `state ${i}`);
      assert.ok(v.runpath === rpath || v.runpath === built, `state ${i}: ${v.runpath}`);
    }
    assert.equal(readelf(f).stderr, '');
    assert.equal(readElf(readFileSync(f)).runpath, rpath);
  }
});

test('a static-pie program is refused a RUNPATH (glibc would abort it); a 64 MiB .bss program grows and runs', () => {
  writeFileSync(path.join(src, 'plain.c'), '#include <stdio.h>\nint main(void) { puts("plain ok"); return 0; }\n');
  writeFileSync(
    path.join(src, 'big.c'),
    '#include <stdio.h>\nstatic char big[64 << 20];\nint main(void) { big[sizeof big - 1] = 1; puts(big[sizeof big - 1] ? "big ok" : "bad"); return 0; }\n',
  );
  const spie = path.join(tmp, 'static-pie');
  gcc(['-static-pie', '-o', spie, path.join(src, 'plain.c')]);
  const big = path.join(tmp, 'big-bss');
  gcc(['-o', big, path.join(src, 'big.c')]);
  const rp = `/${'s'.repeat(300)}`;
  const before = readFileSync(spie);
  const r = relonixPatchelf(['--set-rpath', rp, spie]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /static-pie/);
  assert.ok(readFileSync(spie).equals(before));
  assert.equal(run(spie, []).stdout, 'plain ok\n');
  assert.equal(
    relocateElf(before, (s) => `/relocated${s}`),
    null,
    'nothing to relocate in a static-pie program',
  );
  const size = statSync(big).size;
  assert.equal(relonixPatchelf(['--set-interpreter', INTERP, '--set-rpath', rp, big]).status, 0);
  assert.ok(statSync(big).size < size + (1 << 20), 'no padding the size of .bss');
  assert.equal(run(big, []).stdout, 'big ok\n');
});
