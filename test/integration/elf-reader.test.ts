// The reader on every supported class, byte order and machine. Real files where this host has
// them (the cross C libraries), and for the rest (mips, 32-bit powerpc, big-endian ppc64) small
// ELF files built here field by field; readelf is the oracle for what each one says.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { defaultPageSize, editElf, isElf, readElf, relocateElf } from '../../src/elf/index.ts';
import { Io } from '../../src/elf/reader.ts';
import { readelf } from '../helpers/elf.ts';
import { requireTool, run } from '../helpers/tools.ts';

/** readelf's words for the header fields the reader reports. */
function header(file: string): { cls: number; endian: string; type: string; machine: string } {
  const out = run('readelf', ['-h', '-W', file]).stdout;
  const get = (k: string): string => new RegExp(`^\\s*${k}:\\s+(.*)$`, 'm').exec(out)![1]!.trim();
  return {
    cls: get('Class') === 'ELF64' ? 64 : 32,
    endian: /little/.test(get('Data')) ? 'le' : 'be',
    type: get('Type').split(' ')[0]!,
    machine: get('Machine'),
  };
}

const READELF_MACHINE: Record<string, string> = {
  'Advanced Micro Devices X86-64': 'x86_64',
  'Intel 80386': 'i386',
  AArch64: 'aarch64',
  ARM: 'arm',
  'IBM S/390': 's390',
  PowerPC64: 'ppc64',
  PowerPC: 'ppc',
  'RISC-V': 'riscv',
  'MIPS R3000': 'mips',
};

const REAL = [
  '/usr/lib/x86_64-linux-gnu/libc.so.6',
  '/usr/bin/true',
  '/lib32/libc.so.6',
  '/usr/aarch64-linux-gnu/lib/libc.so.6',
  '/usr/arm-linux-gnueabihf/lib/libc.so.6',
  '/usr/s390x-linux-gnu/lib/libc.so.6',
  '/usr/powerpc64le-linux-gnu/lib/libc.so.6',
  '/usr/riscv64-linux-gnu/lib/libc.so.6',
  '/usr/riscv64-linux-gnu/lib/libm.so.6',
  '/usr/s390x-linux-gnu/lib/ld64.so.1',
  '/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1',
];

test('real files of every host and cross architecture read as readelf reads them', () => {
  requireTool('readelf');
  for (const f of REAL) {
    assert.ok(existsSync(f), `${f} missing: install the libc6 cross packages and libc6-i386`);
    const buf = readFileSync(f);
    assert.ok(isElf(buf));
    const info = readElf(buf, f);
    const h = header(f);
    const { view } = readelf(f);
    assert.equal(info.class, h.cls, f);
    assert.equal(info.endian, h.endian, f);
    assert.equal(info.type, h.type, f);
    assert.equal(info.machineName, READELF_MACHINE[h.machine], `${f}: ${h.machine}`);
    assert.equal(info.interpreter, view.interpreter, f);
    assert.deepEqual(info.needed, view.needed, f);
    assert.equal(info.soname, view.soname, f);
    assert.equal(info.runpath, view.runpath, f);
    assert.equal(info.rpath, view.rpath, f);
    assert.equal(info.hasDynamic, true);
    assert.equal(info.isDynamicLinker, /\/ld[-.6]/.test(f), f);
    if (info.isDynamicLinker)
      assert.equal(
        relocateElf(buf, (s) => `/relocated${s}`, f),
        null,
        `${f}: a dynamic linker is never edited`,
      );
  }
  assert.equal(isElf(Buffer.from('#!/bin/sh\n')), false);
  assert.equal(
    relocateElf(Buffer.from('#!/bin/sh\n'), (s) => s),
    null,
  );
});

interface Synth {
  cls: 32 | 64;
  le: boolean;
  machine: number;
  type: 2 | 3;
  interp?: string;
  needed: string[];
  soname?: string;
  runpath?: string;
}

/** A minimal but complete dynamic ELF file: PHDR, INTERP, one LOAD, DYNAMIC and section headers. */
function synth(s: Synth): Buffer {
  const is64 = s.cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phent = is64 ? 56 : 32;
  const shent = is64 ? 64 : 40;
  const ent = is64 ? 16 : 8;
  const phnum = s.interp ? 4 : 3;
  const base = s.type === 2 ? 0x400000 : 0;
  let at = ehsize + phnum * phent;
  const interpOff = at;
  const interp = s.interp ? Buffer.from(`${s.interp}\0`) : Buffer.alloc(0);
  at += interp.length;
  const strs = ['', ...s.needed, ...(s.soname ? [s.soname] : []), ...(s.runpath ? [s.runpath] : [])];
  const strOff = at;
  const index = new Map<string, number>();
  let strtab = Buffer.alloc(0);
  for (const x of strs) {
    index.set(x, strtab.length);
    strtab = Buffer.concat([strtab, Buffer.from(`${x}\0`)]);
  }
  at += strtab.length;
  at = Math.ceil(at / 8) * 8;
  const dyn: Array<[number, number]> = [
    ...s.needed.map((n): [number, number] => [1, index.get(n)!]),
    ...(s.soname ? [[14, index.get(s.soname)!] as [number, number]] : []),
    ...(s.runpath ? [[29, index.get(s.runpath)!] as [number, number]] : []),
    [5, base + strOff],
    [10, strtab.length],
    [0, 0],
    [0, 0],
    [0, 0],
  ];
  const dynOff = at;
  at += dyn.length * ent;
  const shstr = Buffer.from('\0.interp\0.dynstr\0.dynamic\0.shstrtab\0');
  const shstrOff = at;
  at += shstr.length;
  at = Math.ceil(at / 8) * 8;
  const shoff = at;
  const shnum = 5;
  const size = shoff + shnum * shent;
  const b = Buffer.alloc(size);
  const io = new Io(b, is64, s.le);
  b.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, s.le ? 1 : 2, 1]);
  io.w16(16, s.type);
  io.w16(18, s.machine);
  io.w32(20, 1);
  io.wword(24, base + ehsize);
  io.wword(is64 ? 32 : 28, ehsize);
  io.wword(is64 ? 40 : 32, shoff);
  io.w16(is64 ? 52 : 40, ehsize);
  io.w16(is64 ? 54 : 42, phent);
  io.w16(is64 ? 56 : 44, phnum);
  io.w16(is64 ? 58 : 46, shent);
  io.w16(is64 ? 60 : 48, shnum);
  io.w16(is64 ? 62 : 50, 4);
  const ph = (i: number, type: number, flags: number, off: number, sz: number, align: number): void => {
    const o = ehsize + i * phent;
    io.w32(o, type);
    if (is64) {
      io.w32(o + 4, flags);
      for (const [k, v] of [off, base + off, base + off, sz, sz, align].entries()) io.w64(o + 8 + k * 8, v);
    } else {
      for (const [k, v] of [off, base + off, base + off, sz, sz, flags, align].entries()) io.w32(o + 4 + k * 4, v);
    }
  };
  let i = 0;
  ph(i++, 6, 4, ehsize, phnum * phent, is64 ? 8 : 4);
  if (s.interp) ph(i++, 3, 4, interpOff, interp.length, 1);
  ph(i++, 1, 6, 0, shoff, 0x10000);
  ph(i++, 2, 6, dynOff, dyn.length * ent, is64 ? 8 : 4);
  interp.copy(b, interpOff);
  strtab.copy(b, strOff);
  dyn.forEach(([t, v], k) => {
    io.wword(dynOff + k * ent, t);
    io.wword(dynOff + k * ent + ent / 2, v);
  });
  shstr.copy(b, shstrOff);
  const sh = (k: number, name: number, type: number, flags: number, off: number, sz: number, link: number, align: number, entsize: number): void => {
    const o = shoff + k * shent;
    io.w32(o, name);
    io.w32(o + 4, type);
    if (is64) {
      for (const [j, v] of [flags, type === 3 && name === 27 ? 0 : base + off, off, sz].entries()) io.w64(o + 8 + j * 8, v);
      io.w32(o + 40, link);
      io.w64(o + 48, align);
      io.w64(o + 56, entsize);
    } else {
      for (const [j, v] of [flags, type === 3 && name === 27 ? 0 : base + off, off, sz, link, 0, align, entsize].entries()) io.w32(o + 8 + j * 4, v);
    }
  };
  if (s.interp) sh(1, 1, 1, 2, interpOff, interp.length, 0, 1, 0);
  else sh(1, 1, 1, 2, interpOff, 0, 0, 1, 0);
  sh(2, 9, 3, 2, strOff, strtab.length, 0, 1, 0);
  sh(3, 17, 6, 3, dynOff, dyn.length * ent, 2, 8, ent);
  sh(4, 26, 3, 0, shstrOff, shstr.length, 0, 1, 0);
  return b;
}

const SYNTH: Array<[string, number, 32 | 64, boolean]> = [
  ['mips', 8, 32, false],
  ['mipsel', 8, 32, true],
  ['ppc', 20, 32, false],
  ['ppc64', 21, 64, false],
  ['s390x', 22, 64, false],
  ['riscv64', 243, 64, true],
  ['armhf', 40, 32, true],
  ['i686', 3, 32, true],
  ['aarch64', 183, 64, true],
  ['x86_64', 62, 64, true],
];

test('built files for mips, ppc, ppc64 and others: read, grown, and read back by readelf', () => {
  requireTool('readelf');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-reader-'));
  try {
    for (const [name, machine, cls, le] of SYNTH) {
      for (const type of [2, 3] as const) {
        const spec: Synth = {
          cls,
          le,
          machine,
          type,
          interp: `/lib/ld-${name}.so.1`,
          needed: ['libc.so.6', 'libm.so.6'],
          soname: type === 3 ? `libsynth-${name}.so` : undefined,
          runpath: '/old',
        };
        const f = path.join(dir, `${name}-${type}`);
        writeFileSync(f, synth(spec));
        const info = readElf(readFileSync(f), f);
        const h = header(f);
        const before = readelf(f);
        assert.equal(before.stderr, '', `${name}: the built file itself is clean`);
        assert.equal(info.class, cls);
        assert.equal(info.endian, le ? 'le' : 'be');
        assert.equal(h.endian, le ? 'le' : 'be');
        assert.equal(info.machineName, READELF_MACHINE[h.machine] ?? info.machineName, `${name}: ${h.machine}`);
        assert.equal(info.interpreter, before.view.interpreter);
        assert.deepEqual(info.needed, before.view.needed);
        assert.equal(info.soname, before.view.soname);
        assert.equal(info.runpath, before.view.runpath);

        const interp = `/a/much/longer/prefix/${'z'.repeat(60)}/lib/ld-${name}.so.1`;
        const rpath = `/a/much/longer/prefix/${'r'.repeat(90)}/lib`;
        const out = editElf(readFileSync(f), { interpreter: interp, rpath }, f);
        assert.ok(out);
        writeFileSync(f, out);
        const after = readelf(f);
        assert.equal(after.stderr, '', `${name}/${type}: readelf warns after the edit`);
        assert.equal(after.view.interpreter, interp);
        assert.equal(after.view.runpath, rpath);
        assert.deepEqual(after.view.needed, spec.needed);
        assert.equal(after.view.soname, spec.soname);
        assert.equal(after.view.loads, 2);
        const lines = run('readelf', ['-l', '-W', f])
          .stdout.split('\n')
          .filter((l) => /^\s+LOAD\s/.test(l));
        assert.equal(parseInt(lines[1]!.trim().split(/\s+/).pop()!, 16), defaultPageSize(machine), `${name}: page size`);
        assert.equal(editElf(out, { interpreter: interp, rpath }, f), null, 'same values again change nothing');
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('page size: 64 KiB where the machine may run it, 4 KiB on x86, and overridable', () => {
  assert.equal(defaultPageSize(183), 0x10000);
  assert.equal(defaultPageSize(21), 0x10000);
  assert.equal(defaultPageSize(8), 0x10000);
  assert.equal(defaultPageSize(62), 0x1000);
  assert.equal(defaultPageSize(3), 0x1000);
  const out = editElf(readFileSync('/usr/bin/true'), { rpath: `/${'o'.repeat(300)}`, pageSize: 0x10000 })!;
  const f = path.join(os.tmpdir(), `relonix-pagesize-${process.pid}`);
  writeFileSync(f, out, { mode: 0o755 });
  try {
    const lines = run('readelf', ['-l', '-W', f])
      .stdout.split('\n')
      .filter((l) => /^\s+LOAD\s/.test(l));
    assert.equal(parseInt(lines[lines.length - 1]!.trim().split(/\s+/).pop()!, 16), 0x10000);
    assert.equal(run(f, ['--version']).status, 0);
  } finally {
    rmSync(f);
  }
  assert.throws(() => editElf(readFileSync('/usr/bin/true'), { rpath: '/x'.repeat(200), pageSize: 3000 }), /invalid page size/);
});
