// Shared by the ELF engine tests: a deterministic corpus of real files and what the oracles
// (Debian's readelf and nm) say about a file.

import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { run } from './tools.ts';

export const LONG_PREFIX = '/tmp/relonix-test-a-very-long-prefix-that-must-grow/store';
export const LONG_RPATH = `${LONG_PREFIX}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-zlib-1.3.1/lib:${LONG_PREFIX}/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-gcc-14-lib/lib:/usr/lib/x86_64-linux-gnu`;

function head(file: string): Buffer {
  const b = Buffer.alloc(64);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, b, 0, 64, 0);
  } finally {
    closeSync(fd);
  }
  return b;
}

/**
 * Regular ELF files under `dirs`, sorted by path, deduplicated by real path, at most `max` bytes,
 * dynamic linkers left out (they must never be edited).
 */
export function elfFiles(dirs: string[], max = 20 << 20): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      let real: string;
      try {
        real = realpathSync(p);
        const st = statSync(real);
        if (!st.isFile() || st.size < 64 || st.size > max) continue;
      } catch {
        continue;
      }
      if (seen.has(real) || /^ld(-linux|64)?[-.]/.test(path.basename(real))) continue;
      const h = head(real);
      if (h.readUInt32BE(0) !== 0x7f454c46) continue;
      seen.add(real);
      out.push(real);
    }
  }
  return out;
}

export interface ReadelfView {
  interpreter?: string;
  rpath?: string;
  runpath?: string;
  needed: string[];
  soname?: string;
  loads: number;
  /** PT_NOTE lines as readelf prints them. */
  notes: string[];
}

/** What readelf says about a file, and its stderr (warnings) which must be empty. */
export function readelf(file: string): { view: ReadelfView; stderr: string; status: number | null } {
  const r = run('readelf', ['-h', '-l', '-d', '-W', file]);
  const view: ReadelfView = { needed: [], loads: 0, notes: [] };
  for (const line of r.stdout.split('\n')) {
    let m = /\[Requesting program interpreter: (.*)\]$/.exec(line);
    if (m) view.interpreter = m[1];
    m = /\((RPATH|RUNPATH|NEEDED|SONAME)\)\s+\S+ \S+: \[(.*)\]$/.exec(line);
    if (m) {
      if (m[1] === 'RPATH') view.rpath = m[2];
      else if (m[1] === 'RUNPATH') view.runpath = m[2];
      else if (m[1] === 'SONAME') view.soname = m[2];
      else view.needed.push(m[2]!);
    }
    if (/^\s+LOAD\s/.test(line)) view.loads++;
    if (/^\s+NOTE\s/.test(line)) view.notes.push(line.trim());
  }
  return { view, stderr: r.stderr, status: r.status };
}

export interface SegmentView {
  type: string;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

/** e_phoff, the program header table's size and the segments, as readelf prints them. */
export function programHeaders(file: string): { phoff: number; phsize: number; segments: SegmentView[] } {
  const r = run('readelf', ['-h', '-l', '-W', file]);
  assert.equal(r.status, 0, `readelf -l ${file}: ${r.stderr}`);
  const num = (k: string): number => Number(new RegExp(`^\\s*${k}:\\s+(\\d+)`, 'm').exec(r.stdout)![1]);
  const segments: SegmentView[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+([A-Z_]+|LOOS\+\S+|0x[0-9a-f]+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+) 0x([0-9a-f]+) .{3} 0x([0-9a-f]+)$/.exec(line);
    if (m)
      segments.push({
        type: m[1]!,
        offset: parseInt(m[2]!, 16),
        vaddr: parseInt(m[3]!, 16),
        filesz: parseInt(m[4]!, 16),
        memsz: parseInt(m[5]!, 16),
        align: parseInt(m[6]!, 16),
      });
  }
  return { phoff: num('Start of program headers'), phsize: num('Size of program headers') * num('Number of program headers'), segments };
}

/**
 * Kernels before 5.18 (RHEL 7 and 8) pass AT_PHDR = the first PT_LOAD's (p_vaddr - p_offset) +
 * e_phoff: the table must be mapped there, and PT_PHDR must say so.
 */
export function assertPhdrInvariant(file: string): void {
  const { phoff, phsize, segments } = programHeaders(file);
  const loads = segments.filter((s) => s.type === 'LOAD');
  const first = loads.reduce((a, b) => (b.vaddr < a.vaddr ? b : a));
  const at = first.vaddr - first.offset + phoff;
  const phdr = segments.find((s) => s.type === 'PHDR');
  if (phdr) assert.equal(phdr.vaddr, at, `${file}: PT_PHDR at 0x${phdr.vaddr.toString(16)}, AT_PHDR of old kernels 0x${at.toString(16)}`);
  const home = loads.find((s) => phoff >= s.offset && phoff + phsize <= s.offset + s.filesz);
  assert.ok(home, `${file}: the program header table is in no PT_LOAD`);
  assert.equal(home.vaddr - home.offset, first.vaddr - first.offset, `${file}: the table is mapped away from first PT_LOAD + e_phoff`);
  for (const s of loads) assert.equal((s.vaddr - s.offset) % s.align, 0, `${file}: PT_LOAD at 0x${s.offset.toString(16)} not congruent modulo its alignment`);
}

/** `nm -D` of a file: its dynamic symbols as the binutils read them. */
export function dynamicSymbols(file: string): string {
  const r = run('nm', ['-D', file]);
  assert.equal(r.status, 0, `nm -D ${file}: ${r.stderr}`);
  return r.stdout;
}
