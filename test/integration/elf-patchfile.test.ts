// patchFile and relocateFile on disk: the temp-and-rename write keeps mode (read-only too) and
// works in read-only directories; hard-linked files are rewritten in place so every name sees the
// new content; errors leave the file as it was.

import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ElfError, patchFile, readElf, relocateFile } from '../../src/elf/index.ts';
import { readelf } from '../helpers/elf.ts';
import { run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-patchfile-'));
after(() => {
  chmodSync(path.join(tmp, 'ro-dir'), 0o755);
  rmSync(tmp, { recursive: true, force: true });
});
const LONG = `/tmp/relonix-patchfile/${'p'.repeat(120)}/lib`;

test('patchFile keeps a read-only mode, works in a read-only directory and leaves no temp file', async () => {
  const dir = path.join(tmp, 'ro-dir');
  mkdirSync(dir);
  const f = path.join(dir, 'prog');
  copyFileSync('/usr/bin/true', f);
  chmodSync(f, 0o555);
  chmodSync(dir, 0o555);
  assert.equal(await patchFile(f, { rpath: LONG }), true);
  assert.equal(statSync(f).mode & 0o777, 0o555);
  assert.equal(statSync(dir).mode & 0o777, 0o555, 'the directory is read-only again');
  assert.deepEqual(readdirSync(dir), ['prog']);
  assert.equal(readelf(f).view.runpath, LONG);
  assert.equal(run(f, []).status, 0);
  assert.equal(await patchFile(f, { rpath: LONG }), false, 'same value: no change');
});

test('patchFile keeps hard links: both names see the edit', async () => {
  const a = path.join(tmp, 'a');
  const b = path.join(tmp, 'b');
  copyFileSync('/usr/bin/true', a);
  chmodSync(a, 0o444);
  linkSync(a, b);
  assert.equal(await patchFile(a, { rpath: LONG }), true);
  assert.equal(statSync(a).ino, statSync(b).ino);
  assert.equal(statSync(a).mode & 0o777, 0o444);
  assert.equal(readElf(readFileSync(b)).runpath, LONG);
});

test('relocateFile maps interpreter and RUNPATH, skips non-ELF files and dynamic linkers', async () => {
  const prog = path.join(tmp, 'prog');
  copyFileSync('/usr/bin/true', prog);
  const map = (s: string): string => `/tmp/relonix-relocated${s}`;
  assert.equal(await relocateFile(prog, map), true);
  assert.equal(readElf(readFileSync(prog)).interpreter, '/tmp/relonix-relocated/lib64/ld-linux-x86-64.so.2');
  const script = path.join(tmp, 'script');
  writeFileSync(script, '#!/bin/sh\n');
  assert.equal(await relocateFile(script, map), false);
  const ld = path.join(tmp, 'ld-linux-x86-64.so.2');
  copyFileSync('/lib64/ld-linux-x86-64.so.2', ld);
  const before = readFileSync(ld);
  assert.equal(await relocateFile(ld, map), false);
  assert.ok(readFileSync(ld).equals(before));
});

test('patchFile on a file it must refuse throws ElfError and changes nothing', async () => {
  const f = path.join(tmp, 'truncated');
  const e = readFileSync('/usr/bin/true').subarray(0, 200); // cut inside the program header table
  writeFileSync(f, e);
  await assert.rejects(patchFile(f, { rpath: LONG }), (err: unknown) => err instanceof ElfError && err.message === `${f}: program header table out of bounds`);
  assert.ok(readFileSync(f).equals(e));
});
