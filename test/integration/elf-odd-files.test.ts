// Real kinds of files found in closures that the engine must edit or read as patchelf does (the
// oracle), built here with gcc, objcopy and byte surgery:
// - a program with PT_INTERP and no dynamic table (or an empty PT_DYNAMIC), as klibc's klcc makes:
//   --set-interpreter works and the program starts through the new interpreter;
// - a separate debug file (objcopy --only-keep-debug), whose dynamic table has no bytes;
// - libraries whose section headers name or type the dynamic table and its strings otherwise:
//   the engine finds them through the program headers, as the loader does;
// - SHT_NOTE sections with sh_addralign 0.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readElf, relocateElf } from '../../src/elf/index.ts';
import { relonixPatchelf } from '../helpers/cli.ts';
import { assertPhdrInvariant, dynamicSymbols, programHeaders, readelf } from '../helpers/elf.ts';
import { Elf64 } from '../helpers/elf-surgery.ts';
import { gcc, requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-odd-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SRC = path.join(tmp, 'src');
const OUT = path.join(tmp, 'built');
const PT_DYNAMIC = 2;
const PT_GNU_STACK = 0x6474e551;
const SHT_PROGBITS = 1;
const SHT_NOTE = 7;

function copy(src: string, name: string): string {
  const f = path.join(tmp, `${name}-${Math.random().toString(36).slice(2)}`);
  copyFileSync(src, f);
  return f;
}

/** The same stdout, stderr and exit code from relonix patchelf and Debian's patchelf on copies of `src`. */
function samePrinting(src: string, ops: string[][]): void {
  for (const op of ops) {
    const ours = relonixPatchelf([...op, src]);
    const theirs = run('patchelf', [...op, src]);
    assert.deepEqual([ours.status, ours.stdout, ours.stderr], [theirs.status, theirs.stdout, theirs.stderr], `${path.basename(src)}: patchelf ${op.join(' ')}`);
  }
}

// A program interpreter reduced to what the kernel asks of one: take the program's entry point
// from the auxiliary vector (AT_ENTRY) and jump to it with the stack as the kernel left it.
const MINI_INTERP = `__attribute__((used)) static unsigned long entry_of(unsigned long *sp) {
  unsigned long *p = sp + 1 + sp[0] + 1;
  while (*p) p++;
  for (p++; p[0]; p += 2) if (p[0] == 9) return p[1];
  return 0;
}
__attribute__((naked, noreturn)) void _start(void) {
  __asm__ volatile("mov %rsp, %rdi\\n call entry_of\\n xor %edx, %edx\\n jmp *%rax\\n");
}
`;

// A static program that still names an interpreter (.interp makes ld emit PT_INTERP) and has no
// dynamic table at all; it writes a line and exits through system calls.
const NO_DYNAMIC = `const char interp[] __attribute__((section(".interp"))) = "/lib64/ld-linux-x86-64.so.2";
static const char msg[] = "started through the interpreter\\n";
void _start(void) {
  long n = sizeof msg - 1;
  __asm__ volatile("mov $1, %%eax\\n mov $1, %%edi\\n syscall\\n mov $60, %%eax\\n xor %%edi, %%edi\\n syscall" :: "S"(msg), "d"(n) : "rax", "rdi", "rcx", "r11", "memory");
}
`;

/** The built inputs, by name; filled in before() */
const F = {} as Record<'depDir' | 'emptydyn' | 'interp' | 'nodyn' | 'outer' | 'outerDir' | 'outerOrig' | 'prog', string>;

before(() => {
  requireTool('gcc');
  requireTool('objcopy');
  requireTool('readelf');
  requireTool('patchelf');
  requireTool('nm');
  mkdirSync(SRC);
  mkdirSync(OUT);
  const src = (name: string, code: string): string => {
    const p = path.join(SRC, name);
    writeFileSync(p, code);
    return p;
  };
  F.interp = path.join(OUT, 'mini-interp');
  gcc(['-nostdlib', '-shared', '-fPIC', '-O2', '-Wl,-e,_start', '-o', F.interp, src('interp.c', MINI_INTERP)]);
  F.nodyn = path.join(OUT, 'no-dynamic');
  gcc(['-static', '-nostdlib', '-O2', '-o', F.nodyn, src('nodyn.c', NO_DYNAMIC)]);
  // The same program with its PT_GNU_STACK turned into a PT_DYNAMIC of size 0.
  const e = new Elf64(F.nodyn);
  const i = e.segment(PT_GNU_STACK);
  e.setPhdr(i, 'type', PT_DYNAMIC);
  e.setPhdr(i, 'offset', e.phdr(e.segment(3), 'offset'));
  F.emptydyn = path.join(OUT, 'empty-dynamic');
  e.write(F.emptydyn);

  const main = src('main.c', '#include <stdio.h>\nconst char *outer(void);\nint main(void) { puts(outer()); return 0; }\n');
  F.depDir = path.join(OUT, 'dep');
  mkdirSync(F.depDir);
  gcc(['-shared', '-fPIC', '-o', path.join(F.depDir, 'libdep.so'), src('dep.c', 'const char *dep(void) { return "outer called dep"; }\n')]);
  F.outerDir = path.join(OUT, 'outer');
  mkdirSync(F.outerDir);
  F.outer = path.join(F.outerDir, 'libouter.so');
  // Linked against libdep with a RUNPATH that does not lead to it: only an edit makes it load.
  gcc([
    '-shared',
    '-fPIC',
    '-g',
    '-o',
    F.outer,
    src('outer.c', 'const char *dep(void);\nconst char *outer(void) { return dep(); }\n'),
    `-L${F.depDir}`,
    '-ldep',
    '-Wl,-rpath,/nowhere/lib',
  ]);
  F.outerOrig = path.join(OUT, 'libouter.so.as-built');
  copyFileSync(F.outer, F.outerOrig);
  F.prog = path.join(OUT, 'prog');
  gcc(['-g', '-o', F.prog, main, `-L${F.outerDir}`, '-louter', `-Wl,-rpath,${F.outerDir}`, `-Wl,-rpath-link,${F.depDir}`]);
});

test('a program with PT_INTERP and no dynamic table, or an empty one, gets a new interpreter and starts through it', () => {
  const dir = path.join(tmp, 'a-much-longer-directory-for-the-interpreter-than-it-had-before');
  mkdirSync(dir);
  const interp = path.join(dir, 'ld.so');
  symlinkSync(F.interp, interp);
  for (const name of ['nodyn', 'emptydyn'] as const) {
    samePrinting(F[name], [['--print-interpreter'], ['--print-rpath'], ['--print-needed'], ['--set-rpath', '/x']]);
    for (const value of [interp, '/lib64/ld-linux-x86-64.so.2']) {
      const ours = copy(F[name], name);
      const theirs = copy(F[name], name);
      const a = relonixPatchelf(['--set-interpreter', value, ours]);
      const b = run('patchelf', ['--set-interpreter', value, theirs]);
      assert.deepEqual([a.status, a.stdout, a.stderr], [b.status, b.stdout, b.stderr], `${name}: --set-interpreter ${value}`);
      assert.equal(run('patchelf', ['--print-interpreter', ours]).stdout, `${value}\n`);
      assert.equal(readelf(ours).view.interpreter, value);
      const before = programHeaders(F[name]).segments.filter((s) => s.type === 'DYNAMIC').length;
      assert.equal(programHeaders(ours).segments.filter((s) => s.type === 'DYNAMIC').length, before, `${name}: no dynamic table is made up`);
      assertPhdrInvariant(ours);
    }
    const prog = copy(F[name], name);
    assert.equal(relonixPatchelf(['--set-interpreter', interp, prog]).status, 0);
    assert.equal(run(prog, []).stdout, 'started through the interpreter\n', `${name} runs through the new interpreter`);
    unlinkSync(interp);
    assert.throws(() => run(prog, []), /ENOENT/, `${name} really uses the new path`);
    symlinkSync(F.interp, interp);
  }
});

test('a separate debug file, whose dynamic table and interpreter have no bytes, prints and edits as patchelf does', () => {
  for (const [name, src] of [
    ['library', F.outer],
    ['program', F.prog],
  ] as const) {
    const debug = path.join(OUT, `${name}.debug`);
    assert.equal(run('objcopy', ['--only-keep-debug', src, debug]).status, 0);
    const dyn = programHeaders(debug).segments.find((s) => s.type === 'DYNAMIC')!;
    assert.ok(dyn.filesz === 0 && dyn.memsz > 0, `${name}: the debug file keeps PT_DYNAMIC without its bytes`);
    samePrinting(debug, [['--print-rpath'], ['--print-soname'], ['--print-rpath', '--print-soname']]);
    for (const op of [['--set-rpath', '/x'], ['--remove-rpath'], ['--shrink-rpath']]) {
      const ours = copy(debug, 'debug');
      const theirs = copy(debug, 'debug');
      const a = relonixPatchelf([...op, ours]);
      const b = run('patchelf', [...op, theirs]);
      assert.deepEqual([a.status, a.stdout, a.stderr], [b.status, b.stdout, b.stderr], `${name}: ${op.join(' ')}`);
      assert.ok(readFileSync(ours).equals(readFileSync(debug)), `${name}: ${op.join(' ')} leaves the debug file as it was`);
      assert.ok(readFileSync(theirs).equals(readFileSync(debug)), `${name}: so does patchelf`);
    }
    assert.equal(readElf(readFileSync(debug), debug).hasDynamic, false);
    assert.equal(
      relocateElf(readFileSync(debug), (s) => `/relocated${s}`, debug),
      null,
      `${name}: nothing to relocate in a debug file`,
    );
  }
});

/** Variants of libouter.so whose section headers describe .dynamic and .dynstr in other words. */
function renamed(kind: 'names' | 'type' | 'no-names'): string {
  const e = new Elf64(F.outer);
  const dynamic = e.section('.dynamic');
  const dynstr = e.section('.dynstr');
  if (kind === 'names') {
    e.buf.write('.dynamiX', e.nameAt(dynamic), 'latin1');
    e.buf.write('.dynstX', e.nameAt(dynstr), 'latin1');
  } else if (kind === 'type') {
    e.setShdr(dynamic, 'type', SHT_PROGBITS);
  } else {
    e.buf.writeUInt16LE(0, 62); // e_shstrndx = SHN_UNDEF: no section has a name
  }
  const f = path.join(OUT, `libouter-${kind}.so`);
  e.write(f);
  return f;
}

/** nm finds no symbols without section names: a copy of `f` with the names libouter.so had. */
function withNames(f: string): string {
  const e = new Elf64(f);
  e.buf.writeUInt16LE(new Elf64(F.outer).buf.readUInt16LE(62), 62);
  const out = `${f}.named`;
  e.write(out);
  return out;
}

test('libraries whose section headers name or type .dynamic otherwise are read and edited through PT_DYNAMIC, and then load', () => {
  const symbols = dynamicSymbols(F.outer);
  assert.notEqual(run(F.prog, []).status, 0, 'the program cannot start before libouter.so is pointed at libdep.so');
  const rpath = `${F.depDir}:/${'p'.repeat(200)}`;
  for (const kind of ['names', 'type', 'no-names'] as const) {
    const f = renamed(kind);
    assert.equal(relonixPatchelf(['--print-rpath', f]).stdout, '/nowhere/lib\n', kind);
    assert.deepEqual(relonixPatchelf(['--print-needed', f]).stdout.split('\n').filter(Boolean), readelf(F.outer).view.needed, kind);
    const theirs = run('patchelf', ['--print-rpath', f]);
    // patchelf 0.14 looks sections up by name: it finds nothing where the names differ or are missing.
    if (kind === 'type') assert.equal(theirs.stdout, '/nowhere/lib\n');
    else
      assert.deepEqual(
        [theirs.status, theirs.stderr],
        [
          1,
          kind === 'names'
            ? "patchelf: cannot find section '.dynamic'. The input file is most likely statically linked\n"
            : 'patchelf: string table size is zero\n',
        ],
      );
    const ours = copy(f, kind);
    const r = relonixPatchelf(['--set-rpath', rpath, ours]);
    assert.equal(r.status, 0, `${kind}: ${r.stderr}`);
    assert.equal(relonixPatchelf(['--print-rpath', ours]).stdout, `${rpath}\n`);
    assert.equal(readElf(readFileSync(ours)).runpath, rpath);
    assert.equal(dynamicSymbols(withNames(ours)), symbols, `${kind}: nm -D unchanged`);
    assertPhdrInvariant(ours);
    copyFileSync(ours, path.join(F.outerDir, 'libouter.so'));
    try {
      const p = run(F.prog, []);
      assert.equal(p.status, 0, `${kind}: ${p.stderr}`);
      assert.equal(p.stdout, 'outer called dep\n');
    } finally {
      copyFileSync(F.outerOrig, path.join(F.outerDir, 'libouter.so'));
    }
  }
});

test('SHT_NOTE sections with sh_addralign 0 in a program and a library: edited, notes kept, and they run', () => {
  const interpDir = path.join(tmp, 'note-interp/with/a/longer/path/than/the/one/it/had');
  mkdirSync(interpDir, { recursive: true });
  const interp = path.join(interpDir, 'ld-linux-x86-64.so.2');
  symlinkSync('/lib64/ld-linux-x86-64.so.2', interp);
  try {
    // The library first: the program then loads it, and it must find libdep.so through its new RUNPATH.
    for (const [name, src] of [
      ['library', F.outer],
      ['program', F.prog],
    ] as const) {
      const e = new Elf64(src);
      let notes = 0;
      for (let i = 1; i < e.shnum; i++) {
        if (e.shdr(i, 'type') !== SHT_NOTE) continue;
        e.setShdr(i, 'addralign', 0);
        notes++;
      }
      assert.ok(notes > 0, `${name} has notes`);
      const f = path.join(OUT, `${name}-note0`);
      e.write(f);
      samePrinting(
        f,
        name === 'program' ? [['--print-interpreter'], ['--print-rpath'], ['--print-needed']] : [['--print-rpath'], ['--print-soname'], ['--print-needed']],
      );
      const edited = copy(f, name);
      const args =
        name === 'program'
          ? ['--set-interpreter', interp, '--set-rpath', `${F.outerDir}:/${'n'.repeat(150)}`]
          : ['--set-rpath', `${F.depDir}:/${'n'.repeat(150)}`];
      const r = relonixPatchelf([...args, edited]);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      const v = readelf(edited);
      assert.equal(v.stderr, '', name);
      assert.deepEqual(v.view.notes, readelf(f).view.notes, `${name}: PT_NOTE segments unchanged`);
      assertPhdrInvariant(edited);
      if (name === 'library') {
        copyFileSync(edited, path.join(F.outerDir, 'libouter.so'));
        continue;
      }
      assert.equal(v.view.interpreter, interp);
      const p = run(edited, []);
      assert.equal(p.status, 0, p.stderr);
      assert.equal(p.stdout, 'outer called dep\n');
    }
  } finally {
    copyFileSync(F.outerOrig, path.join(F.outerDir, 'libouter.so'));
  }
});
