// Parses the parts of an ELF file relonix reads or rewrites: header, program and section header
// tables, the dynamic table and its strings. Every offset is checked against the buffer, so bad
// input ends in an ElfError that names the file, never in a RangeError from deep inside. The
// dynamic table and the interpreter are found through the program headers, as the loader finds
// them; section names are never consulted.
import { DT, DT_STRING_TAGS, ET, ET_NAMES, MACHINE_NAMES, PT } from './consts.ts';
import { ElfError } from './error.ts';
import { type ClassLayout, EI, ELFCLASS32, ELFCLASS64, IDENT_SIZE, type Io, identLayout, isElf, MAX_EHDR_SIZE, readEhdr } from './layout.ts';

export { Io } from './layout.ts';

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
  entsize: number;
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

/** Makes sure the bytes [offset, offset + length) of the file are in the buffer (a partial read fills them on demand). */
export type Ensure = (offset: number, length: number) => void;

export interface ParsedElf {
  name: string;
  buf: Buffer;
  io: Io;
  layout: ClassLayout;
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
  /** Index into phdrs of PT_DYNAMIC when the file holds a dynamic table, or -1. */
  dynIndex: number;
  /**
   * PT_DYNAMIC has a size in memory but no bytes in the file: a separate debug file
   * (objcopy --only-keep-debug), whose dynamic table lives in the stripped file.
   */
  dynElsewhere: boolean;
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
  ensure: Ensure;
}

function fail(name: string, problem: string, offset?: number): never {
  throw new ElfError(name, problem, offset);
}

/** Map an address to a file offset through the PT_LOAD segments that hold file bytes. */
export function addrToOffset(phdrs: Phdr[], addr: number): number {
  for (const p of phdrs) {
    if (p.type === PT.LOAD && addr >= p.vaddr && addr < p.vaddr + p.filesz) return addr - p.vaddr + p.offset;
  }
  return -1;
}

const NO_ENSURE: Ensure = () => {};

/** Parse `buf`; with `ensure`, the buffer may be a partial read that is filled as the parser reaches each part. */
export function parseElf(buf: Buffer, name = '<buffer>', ensure: Ensure = NO_ENSURE): ParsedElf {
  ensure(0, MAX_EHDR_SIZE);
  if (buf.length < IDENT_SIZE) fail(name, 'missing ELF header');
  if (!isElf(buf)) fail(name, 'not an ELF executable');
  if (buf[EI.CLASS] !== ELFCLASS32 && buf[EI.CLASS] !== ELFCLASS64) fail(name, 'ELF executable is not 32 or 64 bit', EI.CLASS);
  const l = identLayout(buf);
  if (!l) fail(name, 'ELF executable is not little or big endian', EI.DATA);
  if (buf.length < l.ehdrSize) fail(name, 'missing ELF header');
  const io = l.io(buf);
  const h = readEhdr(l, io);
  const e: ParsedElf = {
    name,
    buf,
    io,
    layout: l,
    is64: l.is64,
    le: l.le,
    type: h.type,
    machine: h.machine,
    phoff: h.phoff,
    phentsize: l.phdr.size,
    phdrs: readPhdrs(l, io, h, name, ensure),
    shoff: h.shoff,
    shentsize: l.shdr.size,
    shdrs: [],
    dynIndex: -1,
    dynElsewhere: false,
    dynOff: 0,
    dynSlots: 0,
    dyn: [],
    strOff: 0,
    strSize: 0,
    interpIndex: -1,
    ensure,
  };
  e.shdrs = readShdrs(e, h.shentsize, h.shnum);
  for (let i = 0; i < e.phdrs.length; i++) {
    const p = e.phdrs[i]!;
    if (p.type === PT.LOAD && p.filesz > 0 && p.offset + p.filesz > buf.length) fail(name, `segment ${i} (PT_LOAD) extends past the end of the file`, p.offset);
    if (p.type === PT.INTERP && e.interpIndex < 0) readInterp(e, i);
    if (p.type === PT.DYNAMIC && e.dynIndex < 0 && !e.dynElsewhere) {
      // A debug file keeps the segment's size in memory but none of its bytes.
      if (p.filesz === 0) e.dynElsewhere = p.memsz > 0;
      else e.dynIndex = i;
    }
  }
  if (e.dynIndex >= 0) readDynamic(e);
  return e;
}

function readPhdrs(l: ClassLayout, io: Io, h: ReturnType<typeof readEhdr>, name: string, ensure: Ensure): Phdr[] {
  const phdrs: Phdr[] = [];
  if (h.phnum === 0) return phdrs;
  if (h.phentsize !== l.phdr.size) fail(name, 'program headers have wrong size');
  if (h.phnum === 0xffff) fail(name, 'extended program header numbering (PN_XNUM) is not supported');
  ensure(h.phoff, h.phnum * h.phentsize);
  if (h.phoff + h.phnum * h.phentsize > io.buf.length) fail(name, 'program header table out of bounds', h.phoff);
  for (let i = 0; i < h.phnum; i++) phdrs.push(l.phdr.read(io, h.phoff + i * h.phentsize, name));
  return phdrs;
}

function readShdrs(e: ParsedElf, shentsize: number, count: number): Shdr[] {
  const { layout: l, io, name, shoff, buf } = e;
  const shdrs: Shdr[] = [];
  if (shoff === 0) return shdrs;
  const ent = l.shdr.size;
  if (shentsize !== ent) fail(name, 'section headers have wrong size');
  e.ensure(shoff, ent);
  if (shoff + ent > buf.length) fail(name, 'section header table out of bounds', shoff);
  // With 0xff00 or more sections the count lives in the first header's size field.
  const shnum = count === 0 ? l.shdr.get(io, shoff, 'size') : count;
  e.ensure(shoff, shnum * ent);
  if (shoff + shnum * ent > buf.length) fail(name, 'section header table out of bounds', shoff);
  for (let i = 0; i < shnum; i++) {
    const s = l.shdr.read(io, shoff + i * ent, name) as unknown as Shdr;
    s.index = i;
    shdrs.push(s);
  }
  return shdrs;
}

function readInterp(e: ParsedElf, i: number): void {
  const p = e.phdrs[i]!;
  // No bytes in the file: a debug file, whose interpreter name lives in the stripped file.
  if (p.filesz === 0) return;
  e.interpIndex = i;
  e.ensure(p.offset, p.filesz);
  if (p.offset + p.filesz > e.buf.length) fail(e.name, 'PT_INTERP lies outside the file', p.offset);
  const end = e.buf.indexOf(0, p.offset);
  if (end < 0 || end >= p.offset + p.filesz) fail(e.name, 'the program interpreter name is not NUL-terminated', p.offset);
  e.interp = e.buf.toString('utf8', p.offset, end);
}

function readDynamic(e: ParsedElf): void {
  const { io, name, buf, layout: l } = e;
  const p = e.phdrs[e.dynIndex]!;
  const ent = l.dyn.size;
  e.ensure(p.offset, p.filesz);
  if (p.offset + p.filesz > buf.length) fail(name, 'the dynamic segment lies outside the file', p.offset);
  const slots = Math.floor(p.filesz / ent);
  if (slots === 0) fail(name, 'the dynamic segment is empty', p.offset);
  e.dynOff = p.offset;
  e.dynSlots = slots;
  let terminated = false;
  for (let i = 0; i < slots; i++) {
    const d: DynEntry = l.dyn.read(io, p.offset + i * ent, name);
    if (d.tag === DT.NULL) {
      terminated = true;
      break;
    }
    e.dyn.push(d);
  }
  if (!terminated) fail(name, 'the dynamic table has no DT_NULL terminator', p.offset);
  const strtab = lastValue(e.dyn, DT.STRTAB);
  const strsz = lastValue(e.dyn, DT.STRSZ);
  if (strtab === undefined) {
    if (e.dyn.some((d) => isNamedTag(d.tag))) fail(name, 'the dynamic table names strings but has no DT_STRTAB', p.offset);
    return;
  }
  if (strsz === undefined || strsz <= 0) fail(name, 'the dynamic string table has zero size (DT_STRSZ)', p.offset);
  const off = addrToOffset(e.phdrs, strtab);
  if (off >= 0) e.ensure(off, strsz);
  if (off < 0 || off + strsz > buf.length) fail(name, 'the dynamic string table (DT_STRTAB) lies outside the file', p.offset);
  // Some toolchains (ia64) end the table on the last string's final character: the loader reads
  // on to the NUL after it, and so does dynString.
  e.strOff = off;
  e.strSize = strsz;
}

function isNamedTag(tag: number): boolean {
  return tag === DT.NEEDED || tag === DT.SONAME || tag === DT.RPATH || tag === DT.RUNPATH;
}

/** Whether `tag` holds an offset into the dynamic string table. */
export function isStringTag(tag: number): boolean {
  return DT_STRING_TAGS.has(tag);
}

/**
 * Where the string at `idx` ends: its NUL, or the end of the table when the table's last string
 * runs up to it unterminated.
 */
export function dynStringEnd(e: ParsedElf, idx: number): number {
  const end = e.buf.indexOf(0, e.strOff + idx);
  return end < 0 || end > e.strOff + e.strSize ? e.strOff + e.strSize : end;
}

/** The NUL-terminated string at `idx` in the dynamic string table. */
export function dynString(e: ParsedElf, idx: number): string {
  if (idx >= e.strSize) fail(e.name, `string offset ${idx} lies outside the dynamic string table`, e.strOff);
  const start = e.strOff + idx;
  return e.buf.toString('utf8', start, dynStringEnd(e, idx));
}

/** The value of the last entry with `tag` (the one the loader keeps), or undefined. */
export function lastValue(dyn: DynEntry[], tag: number): number | undefined {
  for (let i = dyn.length - 1; i >= 0; i--) if (dyn[i]!.tag === tag) return dyn[i]!.val;
  return undefined;
}

/** The value of the last entry with `tag`, as a string. */
export function dynTagString(e: ParsedElf, tag: number): string | undefined {
  const v = lastValue(e.dyn, tag);
  return v === undefined ? undefined : dynString(e, v);
}

/** The search path patchelf prints: the first DT_RUNPATH, which overrides DT_RPATH, else the first DT_RPATH. */
export function searchPath(e: ParsedElf): string | undefined {
  const first = (tag: number): string | undefined => {
    const d = e.dyn.find((x) => x.tag === tag);
    return d && dynString(e, d.val);
  };
  return first(DT.RUNPATH) ?? first(DT.RPATH);
}

export function neededLibraries(e: ParsedElf): string[] {
  return e.dyn.filter((d) => d.tag === DT.NEEDED).map((d) => dynString(e, d.val));
}

const LD_SONAME = /^ld(-[^/]*|64|)\.so(\.\d+)*$/;

export function isDynamicLinker(e: ParsedElf, soname: string | undefined): boolean {
  if (soname && (LD_SONAME.test(soname) || soname.startsWith('ld-linux'))) return true;
  const base = e.name.slice(e.name.lastIndexOf('/') + 1);
  return e.interpIndex < 0 && e.type === ET.DYN && (soname ?? base).startsWith('ld-');
}

export function summarize(e: ParsedElf): ElfInfo {
  const soname = dynTagString(e, DT.SONAME);
  const rpath = dynTagString(e, DT.RPATH);
  const runpath = dynTagString(e, DT.RUNPATH);
  const info: ElfInfo = {
    class: e.is64 ? 64 : 32,
    endian: e.le ? 'le' : 'be',
    machine: e.machine,
    machineName: MACHINE_NAMES[e.machine] ?? `machine-${e.machine}`,
    type: ET_NAMES[e.type] ?? `0x${e.type.toString(16)}`,
    needed: neededLibraries(e),
    hasDynamic: e.dynIndex >= 0,
    isDynamicLinker: isDynamicLinker(e, soname),
  };
  if (e.interp !== undefined) info.interpreter = e.interp;
  if (soname !== undefined) info.soname = soname;
  if (rpath !== undefined) info.rpath = rpath;
  if (runpath !== undefined) info.runpath = runpath;
  return info;
}
