// Parses the parts of an ELF file relonix reads or rewrites: header, program and section header
// tables, the dynamic table and its strings. Every offset is checked against the buffer, so bad
// input ends in an ElfError that names the file, never in a RangeError from deep inside.
import {
  DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB, ET_NAMES, MACHINE_NAMES,
  PT_DYNAMIC, PT_INTERP, PT_LOAD,
} from './consts.ts';

export class ElfError extends Error {
  /** The problem without the file name, for callers that print their own prefix (patchelf-style). */
  readonly problem: string;
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ElfError';
    this.problem = problem;
    this.file = file;
  }
}

export interface Phdr {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface Shdr {
  index: number;
  name: number;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
}

export interface DynEntry {
  tag: number;
  val: number;
}

/** The public summary of a file. */
export interface ElfInfo {
  class: 32 | 64;
  endian: 'le' | 'be';
  machine: number;
  machineName: string;
  type: string;
  interpreter?: string;
  needed: string[];
  soname?: string;
  rpath?: string;
  runpath?: string;
  hasDynamic: boolean;
  isDynamicLinker: boolean;
}

/** Little accessor over a buffer for one class and byte order; all reads are bounds-checked by callers. */
export class Io {
  readonly dv: DataView;
  constructor(readonly buf: Uint8Array, readonly is64: boolean, readonly le: boolean) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  u16(o: number): number {
    return this.dv.getUint16(o, this.le);
  }
  u32(o: number): number {
    return this.dv.getUint32(o, this.le);
  }
  /** A 64-bit field as a Number; addresses past 2^53 do not occur in user-space objects. */
  u64(o: number): number {
    const lo = this.dv.getUint32(this.le ? o : o + 4, this.le);
    const hi = this.dv.getUint32(this.le ? o + 4 : o, this.le);
    return hi * 0x100000000 + lo;
  }
  word(o: number): number {
    return this.is64 ? this.u64(o) : this.u32(o);
  }
  w16(o: number, v: number): void {
    this.dv.setUint16(o, v, this.le);
  }
  w32(o: number, v: number): void {
    this.dv.setUint32(o, v >>> 0, this.le);
  }
  w64(o: number, v: number): void {
    const lo = v % 0x100000000;
    const hi = Math.floor(v / 0x100000000);
    this.dv.setUint32(this.le ? o : o + 4, lo, this.le);
    this.dv.setUint32(this.le ? o + 4 : o, hi, this.le);
  }
  wword(o: number, v: number): void {
    if (this.is64) this.w64(o, v);
    else this.w32(o, v);
  }
}

export interface ParsedElf {
  name: string;
  buf: Buffer;
  io: Io;
  is64: boolean;
  le: boolean;
  type: number;
  machine: number;
  phoff: number;
  phentsize: number;
  phdrs: Phdr[];
  shoff: number;
  shentsize: number;
  shdrs: Shdr[];
  /** Index into phdrs of PT_DYNAMIC, or -1. */
  dynIndex: number;
  /** File offset of the dynamic table and its number of slots (entries up to and after DT_NULL). */
  dynOff: number;
  dynSlots: number;
  /** Entries before the terminating DT_NULL. */
  dyn: DynEntry[];
  /** File offset and size of the dynamic string table, when there is one. */
  strOff: number;
  strSize: number;
  interpIndex: number;
  interp?: string;
}

export const MAGIC = [0x7f, 0x45, 0x4c, 0x46];

export function isElf(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46;
}

function fail(name: string, problem: string): never {
  throw new ElfError(name, problem);
}

/** Map an address to a file offset through the PT_LOAD segments that hold file bytes. */
export function addrToOffset(phdrs: Phdr[], addr: number): number {
  for (const p of phdrs) {
    if (p.type === PT_LOAD && addr >= p.vaddr && addr < p.vaddr + p.filesz) return addr - p.vaddr + p.offset;
  }
  return -1;
}

export function parseElf(buf: Buffer, name = '<buffer>'): ParsedElf {
  if (buf.length < 16) fail(name, 'missing ELF header');
  if (!isElf(buf)) fail(name, 'not an ELF executable');
  const cls = buf[4];
  const data = buf[5];
  if (cls !== 1 && cls !== 2) fail(name, 'ELF executable is not 32 or 64 bit');
  if (data !== 1 && data !== 2) fail(name, 'ELF executable is not little or big endian');
  const is64 = cls === 2;
  const le = data === 1;
  if (buf.length < (is64 ? 64 : 52)) fail(name, 'missing ELF header');
  const io = new Io(buf, is64, le);
  const type = io.u16(16);
  const machine = io.u16(18);
  const phoff = is64 ? io.u64(32) : io.u32(28);
  const shoff = is64 ? io.u64(40) : io.u32(32);
  const phentsize = io.u16(is64 ? 54 : 42);
  const phnum = io.u16(is64 ? 56 : 44);
  const shentsize = io.u16(is64 ? 58 : 46);
  let shnum = io.u16(is64 ? 60 : 48);
  const wantPh = is64 ? 56 : 32;
  const wantSh = is64 ? 64 : 40;

  const phdrs: Phdr[] = [];
  if (phnum > 0) {
    if (phentsize !== wantPh) fail(name, 'program headers have wrong size');
    if (phnum === 0xffff) fail(name, 'extended program header numbering (PN_XNUM) is not supported');
    if (phoff + phnum * phentsize > buf.length) fail(name, 'program header table out of bounds');
    for (let i = 0; i < phnum; i++) {
      const o = phoff + i * phentsize;
      phdrs.push(
        is64
          ? { type: io.u32(o), flags: io.u32(o + 4), offset: io.u64(o + 8), vaddr: io.u64(o + 16), paddr: io.u64(o + 24), filesz: io.u64(o + 32), memsz: io.u64(o + 40), align: io.u64(o + 48) }
          : { type: io.u32(o), offset: io.u32(o + 4), vaddr: io.u32(o + 8), paddr: io.u32(o + 12), filesz: io.u32(o + 16), memsz: io.u32(o + 20), flags: io.u32(o + 24), align: io.u32(o + 28) },
      );
    }
  }

  const shdrs: Shdr[] = [];
  if (shoff !== 0) {
    if (shentsize !== wantSh) fail(name, 'section headers have wrong size');
    if (shoff + wantSh > buf.length) fail(name, 'section header table out of bounds');
    // With 0xff00 or more sections the count lives in the first header's size field.
    if (shnum === 0) shnum = is64 ? io.u64(shoff + 32) : io.u32(shoff + 20);
    if (shoff + shnum * wantSh > buf.length) fail(name, 'section header table out of bounds');
    for (let i = 0; i < shnum; i++) {
      const o = shoff + i * wantSh;
      shdrs.push(
        is64
          ? { index: i, name: io.u32(o), type: io.u32(o + 4), flags: io.u64(o + 8), addr: io.u64(o + 16), offset: io.u64(o + 24), size: io.u64(o + 32), link: io.u32(o + 40) }
          : { index: i, name: io.u32(o), type: io.u32(o + 4), flags: io.u32(o + 8), addr: io.u32(o + 12), offset: io.u32(o + 16), size: io.u32(o + 20), link: io.u32(o + 24) },
      );
    }
  }

  const e: ParsedElf = {
    name, buf, io, is64, le, type, machine, phoff, phentsize: wantPh, phdrs, shoff, shentsize: wantSh, shdrs,
    dynIndex: -1, dynOff: 0, dynSlots: 0, dyn: [], strOff: 0, strSize: 0, interpIndex: -1,
  };

  for (let i = 0; i < phdrs.length; i++) {
    const p = phdrs[i];
    if (p.type === PT_LOAD && p.filesz > 0 && p.offset + p.filesz > buf.length) fail(name, `segment ${i} (PT_LOAD) extends past the end of the file`);
    if (p.type === PT_INTERP && e.interpIndex < 0) {
      e.interpIndex = i;
      if (p.filesz === 0 || p.offset + p.filesz > buf.length) fail(name, 'PT_INTERP lies outside the file');
      const end = buf.indexOf(0, p.offset);
      if (end < 0 || end >= p.offset + p.filesz) fail(name, 'the program interpreter name is not NUL-terminated');
      e.interp = buf.toString('utf8', p.offset, end);
    }
    if (p.type === PT_DYNAMIC && e.dynIndex < 0) e.dynIndex = i;
  }

  if (e.dynIndex >= 0) readDynamic(e);
  return e;
}

function readDynamic(e: ParsedElf): void {
  const { io, name, buf } = e;
  const p = e.phdrs[e.dynIndex];
  const ent = e.is64 ? 16 : 8;
  if (p.offset + p.filesz > buf.length) fail(name, 'the dynamic segment lies outside the file');
  const slots = Math.floor(p.filesz / ent);
  if (slots === 0) fail(name, 'the dynamic segment is empty');
  e.dynOff = p.offset;
  e.dynSlots = slots;
  let terminated = false;
  for (let i = 0; i < slots; i++) {
    const o = p.offset + i * ent;
    const tag = e.is64 ? io.u64(o) : io.u32(o);
    if (tag === DT_NULL) {
      terminated = true;
      break;
    }
    e.dyn.push({ tag, val: e.is64 ? io.u64(o + 8) : io.u32(o + 4) });
  }
  if (!terminated) fail(name, 'the dynamic table has no DT_NULL terminator');
  let strtab = -1;
  let strsz = -1;
  for (const d of e.dyn) {
    if (d.tag === DT_STRTAB) strtab = d.val;
    else if (d.tag === DT_STRSZ) strsz = d.val;
  }
  if (strtab < 0) {
    if (e.dyn.some((d) => isStringTag(d.tag))) fail(name, 'the dynamic table names strings but has no DT_STRTAB');
    return;
  }
  if (strsz <= 0) fail(name, 'the dynamic string table has zero size (DT_STRSZ)');
  const off = addrToOffset(e.phdrs, strtab);
  if (off < 0 || off + strsz > buf.length) fail(name, 'the dynamic string table (DT_STRTAB) lies outside the file');
  if (buf[off + strsz - 1] !== 0) fail(name, 'the dynamic string table does not end with NUL');
  e.strOff = off;
  e.strSize = strsz;
}

function isStringTag(tag: number): boolean {
  return tag === DT_NEEDED || tag === DT_SONAME || tag === DT_RPATH || tag === DT_RUNPATH;
}

/** The NUL-terminated string at `idx` in the dynamic string table. */
export function dynString(e: ParsedElf, idx: number): string {
  if (idx >= e.strSize) fail(e.name, `string offset ${idx} lies outside the dynamic string table`);
  const start = e.strOff + idx;
  const end = e.buf.indexOf(0, start);
  return e.buf.toString('utf8', start, end);
}

const LD_SONAME = /^ld(-[^/]*|64|)\.so(\.\d+)*$/;

export function isDynamicLinker(e: ParsedElf, soname: string | undefined): boolean {
  if (soname && (LD_SONAME.test(soname) || soname.startsWith('ld-linux'))) return true;
  const base = e.name.slice(e.name.lastIndexOf('/') + 1);
  return e.interpIndex < 0 && ET_NAMES[e.type] === 'DYN' && (soname ?? base).startsWith('ld-');
}

export function summarize(e: ParsedElf): ElfInfo {
  const needed: string[] = [];
  let soname: string | undefined;
  let rpath: string | undefined;
  let runpath: string | undefined;
  for (const d of e.dyn) {
    if (d.tag === DT_NEEDED) needed.push(dynString(e, d.val));
    else if (d.tag === DT_SONAME) soname = dynString(e, d.val);
    else if (d.tag === DT_RPATH) rpath = dynString(e, d.val);
    else if (d.tag === DT_RUNPATH) runpath = dynString(e, d.val);
  }
  const info: ElfInfo = {
    class: e.is64 ? 64 : 32,
    endian: e.le ? 'le' : 'be',
    machine: e.machine,
    machineName: MACHINE_NAMES[e.machine] ?? `machine-${e.machine}`,
    type: ET_NAMES[e.type] ?? `0x${e.type.toString(16)}`,
    needed,
    hasDynamic: e.dynIndex >= 0,
    isDynamicLinker: isDynamicLinker(e, soname),
  };
  if (e.interp !== undefined) info.interpreter = e.interp;
  if (soname !== undefined) info.soname = soname;
  if (rpath !== undefined) info.rpath = rpath;
  if (runpath !== undefined) info.runpath = runpath;
  return info;
}
