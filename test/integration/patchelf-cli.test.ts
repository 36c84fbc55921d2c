// `relonix patchelf` next to Debian's patchelf on the same inputs: the same stdout, stderr and
// exit code, and for edits the same values read back from the written files.

import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { relonixPatchelf } from '../helpers/cli.ts';
import { readelf } from '../helpers/elf.ts';
import { requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-patchelf-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The built inputs, by name; filled in before() */
const F = {} as Record<'dir' | 'empty' | 'exe' | 'lib' | 'missing' | 'nosh' | 'reloc' | 'rpathfile' | 'static' | 'text' | 'trunc', string>;

before(() => {
  requireTool('patchelf');
  requireTool('gcc');
  const dir = path.join(tmp, 'in');
  mkdirSync(dir);
  F.exe = '/usr/bin/true';
  F.lib = '/usr/lib/x86_64-linux-gnu/libz.so.1';
  F.missing = path.join(tmp, 'does-not-exist');
  F.dir = tmp;
  F.text = path.join(dir, 'script.sh');
  writeFileSync(F.text, `#!/bin/sh\n${'echo a shell script, long enough to hold an ELF header\n'.repeat(4)}`);
  F.empty = path.join(dir, 'empty');
  writeFileSync(F.empty, '');
  F.trunc = path.join(dir, 'truncated');
  writeFileSync(F.trunc, readFileSync(F.exe).subarray(0, 40));
  F.nosh = path.join(dir, 'no-section-headers');
  const b = Buffer.from(readFileSync(F.exe));
  b.writeUInt16LE(0, 60); // e_shnum
  writeFileSync(F.nosh, b);
  F.reloc = path.join(dir, 'object.o');
  writeFileSync(path.join(dir, 'm.c'), 'int main(void) { return 0; }\n');
  assert.equal(run('gcc', ['-c', '-o', F.reloc, path.join(dir, 'm.c')]).status, 0);
  F.static = path.join(dir, 'static');
  const st = run('gcc', ['-static', '-o', F.static, path.join(dir, 'm.c')]);
  assert.equal(st.status, 0, `gcc -static needs libc.a (libc6-dev): ${st.stderr}`);
  F.rpathfile = path.join(dir, 'rpath-arg');
  writeFileSync(F.rpathfile, '/from/a/file:/and/more\n');
});

function both(args: string[]): void {
  const theirs = run('patchelf', args);
  const ours = relonixPatchelf(args);
  assert.equal(ours.stdout, theirs.stdout, `stdout of patchelf ${args.join(' ')}`);
  assert.equal(ours.stderr, theirs.stderr, `stderr of patchelf ${args.join(' ')}`);
  assert.equal(ours.status, theirs.status, `exit code of patchelf ${args.join(' ')}`);
}

test('printing operations and errors match patchelf exactly', () => {
  const f = (k: keyof typeof F): string => F[k];
  const cases: string[][] = [
    [],
    ['--help'],
    ['-h'],
    ['--print-interpreter'],
    ['--set-rpath'],
    ['--page-size'],
    ['--page-size', '0', '--print-rpath', f('exe')],
    ['--page-size', 'x', f('exe')],
    ['--output', 'a', f('exe'), f('lib')],
    ['--print-interpreter', f('exe')],
    ['--print-interpreter', f('lib')],
    ['--print-rpath', f('exe')],
    ['--print-rpath', f('lib')],
    ['--print-soname', f('lib')],
    ['--print-soname', f('exe')],
    ['--print-needed', f('exe')],
    ['--print-needed', f('lib')],
    ['--print-needed', '--print-rpath', '--print-soname', '--print-interpreter', f('exe')],
    ['--print-interpreter', f('exe'), f('lib')],
    ['--print-rpath', f('exe'), f('lib'), f('exe')],
    ['--print-interpreter', f('text')],
    ['--print-interpreter', f('missing')],
    ['--print-interpreter', f('dir')],
    ['--print-interpreter', f('empty')],
    ['--print-interpreter', f('trunc')],
    ['--print-interpreter', f('nosh')],
    ['--print-interpreter', f('reloc')],
    ['--print-interpreter', f('static')],
    ['--print-rpath', f('static')],
    ['--print-needed', f('static')],
    ['--print-soname', f('static')],
    ['--set-rpath', '/x', f('static')],
    ['--set-interpreter', '/x', f('static')],
    ['--set-interpreter', '/x', f('lib')],
    ['--debug', '--print-rpath', f('exe')],
    ['--print-rpath', f('exe'), f('missing'), f('lib')],
    ['--print-rpath', '--bogus-option', f('exe')],
  ];
  for (const args of cases) both(args);
});

test('edits agree with patchelf: same output and the same values read back', () => {
  const ops: string[][] = [
    ['--set-interpreter', `/tmp/${'i'.repeat(120)}/ld-linux-x86-64.so.2`],
    ['--set-rpath', `/tmp/${'r'.repeat(150)}/lib:/usr/lib`],
    ['--set-rpath', ''],
    ['--add-rpath', '/first', '--add-rpath', '/second'],
    ['--force-rpath', '--set-rpath', '/forced'],
    ['--remove-rpath'],
    ['--shrink-rpath'],
    ['--set-rpath', `@${F.rpathfile}`],
    ['--set-interpreter', '/short', '--set-rpath', '/a', '--print-interpreter', '--print-rpath'],
    ['--page-size', '65536', '--set-rpath', `/${'p'.repeat(200)}`],
  ];
  for (const src of [F.exe, F.lib]) {
    for (const op of ops) {
      if (src === F.lib && op.includes('--set-interpreter')) continue;
      const a = path.join(tmp, 'ours');
      const b = path.join(tmp, 'theirs');
      copyFileSync(src, a);
      copyFileSync(src, b);
      const ours = relonixPatchelf([...op, a]);
      const theirs = run('patchelf', [...op, b]);
      assert.equal(ours.status, theirs.status, op.join(' '));
      assert.equal(ours.stdout, theirs.stdout, op.join(' '));
      assert.equal(ours.stderr, theirs.stderr, op.join(' '));
      const va = readelf(a);
      const vb = readelf(b);
      assert.equal(va.stderr, '', op.join(' '));
      assert.deepEqual(va.view.needed, vb.view.needed);
      assert.equal(va.view.interpreter, vb.view.interpreter, op.join(' '));
      assert.equal(va.view.runpath, vb.view.runpath, op.join(' '));
      assert.equal(va.view.rpath, vb.view.rpath, op.join(' '));
      // Both tools print the same values from our output.
      const pa = run('patchelf', ['--print-rpath', a]);
      assert.equal(pa.stdout, run('patchelf', ['--print-rpath', b]).stdout);
      rmSync(a);
      rmSync(b);
    }
  }
});

test('--output writes a new file and leaves the input alone; a run stops at the first bad file', () => {
  const input = path.join(tmp, 'in-exe');
  copyFileSync(F.exe, input);
  const before = readFileSync(input);
  const out = path.join(tmp, 'out-exe');
  const r = relonixPatchelf(['--set-rpath', '/via/output', '--output', out, input]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(readFileSync(input).equals(before));
  assert.equal(readelf(out).view.runpath, '/via/output');
  assert.equal(statSync(out).mode & 0o777, statSync(input).mode & 0o777);

  const one = path.join(tmp, 'one');
  const two = path.join(tmp, 'two');
  copyFileSync(F.exe, one);
  copyFileSync(F.exe, two);
  const r2 = relonixPatchelf(['--set-rpath', '/edited', one, F.text, two]);
  assert.equal(r2.status, 1);
  assert.equal(r2.stderr, 'patchelf: not an ELF executable\n');
  assert.equal(readelf(one).view.runpath, '/edited');
  assert.ok(readFileSync(two).equals(readFileSync(F.exe)), 'files after the failing one are untouched');
});

test('read-only files keep their mode and hard links stay linked', () => {
  const ro = path.join(tmp, 'readonly');
  copyFileSync(F.exe, ro);
  chmodSync(ro, 0o555);
  assert.equal(relonixPatchelf(['--set-rpath', `/${'q'.repeat(100)}`, ro]).status, 0);
  assert.equal(statSync(ro).mode & 0o777, 0o555);
  assert.equal(readelf(ro).view.runpath, `/${'q'.repeat(100)}`);

  const a = path.join(tmp, 'link-a');
  const b = path.join(tmp, 'link-b');
  copyFileSync(F.exe, a);
  chmodSync(a, 0o444);
  linkSync(a, b);
  assert.equal(relonixPatchelf(['--set-rpath', `/${'h'.repeat(100)}`, a]).status, 0);
  assert.equal(statSync(a).ino, statSync(b).ino);
  assert.equal(statSync(b).nlink, 2);
  assert.equal(statSync(a).mode & 0o777, 0o444);
  assert.equal(readelf(b).view.runpath, `/${'h'.repeat(100)}`);
});

test('--version names patchelf compatibility', () => {
  const r = relonixPatchelf(['--version']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^patchelf 0\.14\.3 \(relonix [\d.]+\)\n$/);
});
