// Other machines, classes and byte orders: the cross C libraries Debian ships for aarch64 (64 KiB
// pages), armhf (32-bit), s390x (big-endian), ppc64le and riscv64, plus i386 from /lib32. Every
// object is rewritten and read back by readelf and patchelf; each libc.so.6 (which is also a
// program that prints its version) is then run through its new interpreter path under qemu-user
// (helpers/foreign.ts), i386 as well: a 64-bit kernel may not run 32-bit x86 programs at all.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { readElf } from '../../src/elf/index.ts';
import { relonixPatchelf } from '../helpers/cli.ts';
import { assertPhdrInvariant, dynamicSymbols, elfFiles, readelf } from '../helpers/elf.ts';
import { programArgv } from '../helpers/foreign.ts';
import { requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-cross-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Arch {
  name: string;
  lib: string;
  ld: string;
  machine: string;
  cls: 32 | 64;
  endian: 'le' | 'be';
  page: number;
}

const ARCHES: Arch[] = [
  {
    name: 'aarch64',
    lib: '/usr/aarch64-linux-gnu/lib',
    ld: 'ld-linux-aarch64.so.1',
    machine: 'aarch64',
    cls: 64,
    endian: 'le',
    page: 0x10000,
  },
  {
    name: 'armhf',
    lib: '/usr/arm-linux-gnueabihf/lib',
    ld: 'ld-linux-armhf.so.3',
    machine: 'arm',
    cls: 32,
    endian: 'le',
    page: 0x1000,
  },
  { name: 's390x', lib: '/usr/s390x-linux-gnu/lib', ld: 'ld64.so.1', machine: 's390', cls: 64, endian: 'be', page: 0x1000 },
  {
    name: 'ppc64le',
    lib: '/usr/powerpc64le-linux-gnu/lib',
    ld: 'ld64.so.2',
    machine: 'ppc64',
    cls: 64,
    endian: 'le',
    page: 0x10000,
  },
  {
    name: 'riscv64',
    lib: '/usr/riscv64-linux-gnu/lib',
    ld: 'ld-linux-riscv64-lp64d.so.1',
    machine: 'riscv',
    cls: 64,
    endian: 'le',
    page: 0x1000,
  },
  { name: 'i386', lib: '/lib32', ld: 'ld-linux.so.2', machine: 'i386', cls: 32, endian: 'le', page: 0x1000 },
];

/** Alignment of the last PT_LOAD as readelf prints it: the segment relonix appended. */
function lastLoadAlign(file: string): number {
  const lines = run('readelf', ['-l', '-W', file])
    .stdout.split('\n')
    .filter((l) => /^\s+LOAD\s/.test(l));
  return parseInt(lines[lines.length - 1]!.trim().split(/\s+/).pop()!, 16);
}

for (const a of ARCHES) {
  test(`${a.name}: every object rewritten, read back by readelf and patchelf, libc runs via the new loader path`, () => {
    requireTool('readelf');
    requireTool('patchelf');
    requireTool('nm');
    assert.ok(existsSync(path.join(a.lib, 'libc.so.6')), `${a.lib}/libc.so.6 is missing: install the libc6 cross package for ${a.name}`);
    const dir = path.join(tmp, a.name);
    const ldDir = path.join(dir, 'a-much-longer-store-path-than-the-original-one/0123456789abcdfghijklmnpqrsvwxyz-glibc/lib');
    mkdirSync(ldDir, { recursive: true });
    const interp = path.join(ldDir, a.ld);
    symlinkSync(path.join(a.lib, a.ld), interp);
    const rpath = `${dir}/another-long-directory-that-cannot-fit-in-the-old-string/lib:${a.lib}`;

    const files = elfFiles([a.lib]).filter((f) => readElf(readFileSync(f), f).hasDynamic);
    assert.ok(files.length >= 10, `only ${files.length} objects in ${a.lib}`);
    const copies = files.map((f) => {
      const dst = path.join(dir, path.basename(f));
      copyFileSync(f, dst);
      return dst;
    });
    const infos = new Map(copies.map((f) => [f, readElf(readFileSync(f), f)]));
    const symbols = new Map(copies.map((f) => [f, dynamicSymbols(f)]));
    const progs = copies.filter((f) => infos.get(f)!.interpreter);
    const libs = copies.filter((f) => !infos.get(f)!.interpreter);
    assert.ok(progs.length > 0, 'libc.so.6 has an interpreter and must be among the programs');
    for (const [args, list] of [
      [['--set-interpreter', interp, '--set-rpath', rpath], progs],
      [['--set-rpath', rpath], libs],
    ] as const) {
      if (!list.length) continue;
      const r = relonixPatchelf([...args, ...list]);
      assert.equal(r.status, 0, r.stderr);
    }
    for (const f of copies) {
      const info = infos.get(f)!;
      assert.equal(info.machineName, a.machine, f);
      assert.equal(info.class, a.cls, f);
      assert.equal(info.endian, a.endian, f);
      const { view, stderr } = readelf(f);
      assert.equal(stderr, '', `readelf warns about ${f}`);
      assert.equal(view.runpath, rpath, f);
      assert.deepEqual(view.needed, info.needed, f);
      if (info.interpreter) assert.equal(view.interpreter, interp, f);
      const p = run('patchelf', ['--print-rpath', f]);
      assert.equal(p.stdout, `${rpath}\n`, `patchelf on ${f}: ${p.stderr}`);
      assert.equal(lastLoadAlign(f), a.page, `${f}: new segment aligned to the machine's page size`);
      assertPhdrInvariant(f);
      if (!info.interpreter) assert.equal(dynamicSymbols(f), symbols.get(f), `${f}: nm -D unchanged`);
    }

    const libc = path.join(dir, 'libc.so.6');
    // under qemu-user for every machine but the host's own, i386 too: a 64-bit kernel may refuse it
    const { cmd, args } = programArgv(libc);
    assert.notEqual(cmd, libc, `${a.name} is not this host's machine: it runs under qemu-user`);
    const ok = run(cmd, args);
    assert.equal(ok.status, 0, `${a.name} libc.so.6 failed to run after rewriting: ${ok.stderr}`);
    assert.match(ok.stdout, /GNU C Library/);
    // It really goes through the new path: without the link there, it cannot start.
    unlinkSync(interp);
    const gone = (() => {
      try {
        return run(cmd, args).status;
      } catch {
        return -1;
      }
    })();
    assert.notEqual(gone, 0, `${a.name} libc.so.6 still runs without its interpreter`);
  });
}
