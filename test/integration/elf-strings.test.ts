// The dynamic string table as linkers really write it. ld merges string tails, so a RUNPATH can be
// the last bytes of a symbol name or of a symbol version name: a new search path must then go
// elsewhere, never over those bytes. And some toolchains (ia64) end the table on a string's last
// character, with the NUL after DT_STRSZ: the table is read as the loader reads it, and a string
// appended to it gets the NUL it lacks first, so the last string (a RUNPATH, a version name) does
// not run on into the new one.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { relonixPatchelf } from '../helpers/cli.ts';
import { dynamicSymbols, readelf } from '../helpers/elf.ts';
import { Elf64 } from '../helpers/elf-surgery.ts';
import { gcc, requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-strings-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SRC = path.join(tmp, 'src');
const BUILT = path.join(tmp, 'built');
/** Where the programs look for their library (their RUNPATH): each case copies its edited library here. */
const LIBDIR = path.join(tmp, 'lib');
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_RUNPATH = 29;

/** The library `libcase.so` built from `code`, and a program linked against it that prints what a_symbol_name returns. */
function build(name: string, code: string, ldflags: string[]): { lib: string; prog: string } {
  const dir = path.join(BUILT, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(SRC, `${name}.c`), code);
  const lib = path.join(dir, 'libcase.so');
  gcc(['-shared', '-fPIC', '-Wl,-soname,libcase.so', '-o', lib, path.join(SRC, `${name}.c`), ...ldflags]);
  const prog = path.join(dir, 'prog');
  gcc(['-o', prog, path.join(SRC, 'main.c'), `-L${dir}`, '-lcase', `-Wl,-rpath,${LIBDIR}`]);
  return { lib, prog };
}

/** The bytes of .dynstr (by DT_STRTAB/DT_STRSZ) just before and at the RUNPATH string. */
function aroundRunpath(file: string, back: number): string {
  const e = new Elf64(file);
  const table = e.shdr(e.section('.dynstr'), 'offset');
  assert.equal(e.shdr(e.section('.dynstr'), 'addr'), e.dyn(DT_STRTAB));
  const at = table + e.dyn(DT_RUNPATH);
  return e.buf.toString('latin1', at - back, e.buf.indexOf(0, at));
}

function runsWith(prog: string, lib: string): void {
  copyFileSync(lib, path.join(LIBDIR, 'libcase.so'));
  const r = run(prog, []);
  assert.equal(r.status, 0, `${prog} with ${lib}: ${r.stderr}`);
  assert.equal(r.stdout, 'from the library\n42\n');
}

let tail: { lib: string; prog: string };
let version: { lib: string; prog: string };

before(() => {
  requireTool('gcc');
  requireTool('nm');
  requireTool('readelf');
  requireTool('patchelf');
  mkdirSync(SRC);
  mkdirSync(LIBDIR);
  writeFileSync(path.join(SRC, 'main.c'), '#include <stdio.h>\nint a_symbol_name(void);\nint main(void) { printf("%d\\n", a_symbol_name()); return 0; }\n');
  const code = '#include <stdio.h>\nint a_symbol_name(void) { puts("from the library"); return 42; }\n';
  tail = build('tail', code, ['-Wl,-rpath,name']);
  version = build('version', code, ['-Wl,-rpath,2.2.5']);
});

const RPATHS = ['/x', 'nam', `/a/much/longer/search/path/${'l'.repeat(100)}/lib`];

for (const [what, which, shared] of [
  ['a symbol name', () => tail, 'a_symbol_'],
  ['a symbol version name', () => version, 'GLIBC_'],
] as const) {
  test(`a RUNPATH that is the tail of ${what}: shorter and longer values leave that name intact`, () => {
    const { lib, prog } = which();
    assert.equal(
      aroundRunpath(lib, shared.length),
      `${shared}${shared === 'GLIBC_' ? '2.2.5' : 'name'}`,
      'the linker merged the RUNPATH into the other string',
    );
    const symbols = dynamicSymbols(lib);
    const versions = run('readelf', ['-V', '-W', lib]).stdout;
    runsWith(prog, lib);
    for (const rpath of RPATHS) {
      const f = path.join(tmp, `edited-${path.basename(path.dirname(lib))}`);
      copyFileSync(lib, f);
      const r = relonixPatchelf(['--set-rpath', rpath, f]);
      assert.equal(r.status, 0, r.stderr);
      const { view, stderr } = readelf(f);
      assert.equal(stderr, '');
      assert.equal(view.runpath, rpath);
      assert.equal(dynamicSymbols(f), symbols, `${rpath}: nm -D unchanged`);
      assert.equal(run('readelf', ['-V', '-W', f]).stdout.replaceAll(path.basename(f), path.basename(lib)), versions, `${rpath}: version names unchanged`);
      assert.equal(run('patchelf', ['--print-rpath', f]).stdout, `${rpath}\n`);
      runsWith(prog, f);
    }
  });
}

/** Cut DT_STRSZ (and the section's size, which patchelf reads) by one: the last string loses its NUL. */
function unterminated(lib: string, out: string): void {
  const e = new Elf64(lib);
  const sec = e.section('.dynstr');
  e.setDyn(DT_STRSZ, e.dyn(DT_STRSZ) - 1);
  e.setShdr(sec, 'size', e.shdr(sec, 'size') - 1);
  assert.notEqual(e.buf[e.shdr(sec, 'offset') + e.dyn(DT_STRSZ) - 1], 0, 'the table now ends without NUL');
  e.write(out);
}

/** The last string of .dynstr, by DT_STRTAB and DT_STRSZ. */
function lastString(file: string): string {
  const e = new Elf64(file);
  const table = e.shdr(e.section('.dynstr'), 'offset');
  const end = table + e.dyn(DT_STRSZ) - 1;
  return e.buf.toString('latin1', e.buf.lastIndexOf(0, end - 1) + 1, end);
}

test('a string table that ends without NUL is read as patchelf reads it, and appended to without joining its last string', () => {
  const code = '#include <stdio.h>\nint a_symbol_name(void) { puts("from the library"); return 42; }\n';
  const cases = [
    ['the RUNPATH', build('runpath-last', code, ['-Wl,-rpath,/some/where']), '/some/where'],
    ['a version name', build('version-last', code, []), 'GLIBC_2.2.5'],
  ] as const;
  for (const [name, built, last] of cases) {
    assert.equal(lastString(built.lib), last, `${name} is the table's last string`);
    const f = path.join(tmp, 'unterminated.so');
    unterminated(built.lib, f);
    for (const op of [['--print-rpath'], ['--print-soname'], ['--print-needed'], ['--print-rpath', '--print-soname', '--print-needed']]) {
      const ours = relonixPatchelf([...op, f]);
      const theirs = run('patchelf', [...op, f]);
      assert.deepEqual([ours.status, ours.stdout, ours.stderr], [theirs.status, theirs.stdout, theirs.stderr], `${name} last: ${op.join(' ')}`);
    }
    // nm reads no names from a table without its NUL: the edited file is compared with the library as built.
    const symbols = dynamicSymbols(built.lib);
    const versions = run('readelf', ['-V', '-W', built.lib]).stdout;
    for (const rpath of RPATHS) {
      const g = path.join(tmp, 'unterminated-edited.so');
      copyFileSync(f, g);
      const r = relonixPatchelf(['--set-rpath', rpath, g]);
      assert.equal(r.status, 0, `${name} last: ${r.stderr}`);
      const { view, stderr } = readelf(g);
      assert.equal(stderr, '', name);
      assert.equal(view.runpath, rpath, name);
      assert.equal(view.soname, 'libcase.so', `${name} last: the soname did not run into the new string`);
      assert.deepEqual(view.needed, readelf(built.lib).view.needed, name);
      assert.equal(dynamicSymbols(g), symbols, name);
      assert.equal(
        run('readelf', ['-V', '-W', g]).stdout.replaceAll(path.basename(g), path.basename(built.lib)),
        versions,
        `${name} last: version names unchanged`,
      );
      runsWith(built.prog, g);
    }
  }
});
