// Rewrites the program interpreter and RPATH/RUNPATH of a parsed ELF file.
//
// Strategy (patchelf's, which has survived years of odd binaries): values that fit where the old
// ones were are written in place and the file does not grow. Otherwise one PT_LOAD is appended at
// the end of the file holding a new program header table (with room for that PT_LOAD), the moved
// dynamic table if it needed a slot, the interpreter and a copy of .dynstr with the new strings.
// Nothing else moves, so every other DT_* address, symbol and relocation stays valid; only
// PT_PHDR, PT_INTERP, PT_DYNAMIC, DT_STRTAB/DT_STRSZ and the matching section headers change.
// PT_NOTE, PT_GNU_RELRO and the sections they cover stay where they are. The new segment is
// writable (a moved .dynamic must be: the loader writes DT_DEBUG), aligned to the machine's page
// size (64 KiB where the machine may run it) and placed above every existing segment. Its address
// minus its offset equals the first PT_LOAD's, because kernels before 5.18 compute AT_PHDR, and
// static-pie start-up code the header table's address, as load address + e_phoff. A later edit recognises the
// segment it added (it ends the file and holds only what relonix puts there) and rebuilds it
// instead of stacking another one; strings it appended are reused when a value changes again.
import {
  DT_NEEDED, DT_PTR_TAGS, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB, PF_R, PF_W, PT_DYNAMIC,
  PT_INTERP, PT_LOAD, PT_PHDR, SHF_ALLOC, EM, defaultPageSize,
} from './consts.ts';
import { ElfError, Io, type DynEntry, type ParsedElf, type Phdr, dynString } from './reader.ts';

export interface ElfEdits {
  interpreter?: string;
  /** A new search path; null removes DT_RPATH/DT_RUNPATH. */
  rpath?: string | null;
  /** Write DT_RPATH instead of DT_RUNPATH. */
  forceRpath?: boolean;
  pageSize?: number;
}

const SHT_PROGBITS = 1;
const DT_FLAGS_1 = 0x6ffffffb;
const DF_1_PIE = 0x08000000;
const SHT_STRTAB = 3;
const SHT_DYNAMIC = 6;
/** Spare dynamic slots left in a moved table so a later added entry needs no move. */
const SPARE_DYN = 4;
/** Most zero padding accepted to keep a program's new segment congruent with its first one. */
const MAX_PAD = 16 << 20;
const STRING_TAGS = new Set([DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, 0x7ffffffd, 0x7fffffff]);

const alignUp = (v: number, a: number): number => Math.ceil(v / a) * a;

function fail(e: ParsedElf, problem: string): never {
  throw new ElfError(e.name, problem);
}

function cstrBytes(e: ParsedElf, s: string, what: string): Buffer {
  if (s.includes('\0')) fail(e, `the new ${what} contains a NUL byte`);
  return Buffer.from(s + '\0', 'utf8');
}

/** Does any dynamic string other than entry `skip` start inside [off, off+len]? Then it is shared. */
function stringShared(dyn: DynEntry[], skip: DynEntry, off: number, len: number): boolean {
  return dyn.some((d) => d !== skip && STRING_TAGS.has(d.tag) && d.val >= off && d.val <= off + len);
}

/** Index of a PT_LOAD this engine appended earlier and may rebuild, or -1. */
export function ownSegment(e: ParsedElf): number {
  let last = -1;
  for (let i = 0; i < e.phdrs.length; i++) {
    const p = e.phdrs[i];
    if (p.type === PT_LOAD && (last < 0 || p.offset > e.phdrs[last].offset)) last = i;
  }
  if (last < 0) return -1;
  const s = e.phdrs[last];
  if (s.offset + s.filesz !== e.buf.length || s.filesz !== s.memsz || s.flags !== (PF_R | PF_W)) return -1;
  if (e.phoff < s.offset || e.phoff + e.phdrs.length * e.phentsize > s.offset + s.filesz) return -1;
  const inside = (a: number): boolean => a >= s.vaddr && a < s.vaddr + s.memsz;
  for (let i = 0; i < e.phdrs.length; i++) {
    const p = e.phdrs[i];
    if (i === last) continue;
    if (p.type === PT_LOAD && p.vaddr + p.memsz > s.vaddr) return -1;
    const known = p.type === PT_PHDR || p.type === PT_INTERP || p.type === PT_DYNAMIC;
    if (!known && p.filesz > 0 && p.offset < s.offset + s.filesz && p.offset + p.filesz > s.offset) return -1;
  }
  if (e.shdrs.length && e.shoff + e.shdrs.length * e.shentsize > s.offset) return -1;
  const strtab = e.dyn.find((d) => d.tag === DT_STRTAB)?.val;
  const dynAddr = e.dynIndex >= 0 ? e.phdrs[e.dynIndex].vaddr : -1;
  const interpAddr = e.interpIndex >= 0 ? e.phdrs[e.interpIndex].vaddr : -1;
  for (const d of e.dyn) if (DT_PTR_TAGS.has(d.tag) && d.tag !== DT_STRTAB && inside(d.val)) return -1;
  for (const sh of e.shdrs) {
    if (!(sh.flags & SHF_ALLOC) || !inside(sh.addr)) continue;
    if (sh.addr !== strtab && sh.addr !== dynAddr && sh.addr !== interpAddr) return -1;
  }
  return last;
}

/**
 * The result of an edit: `pre` holds the output's bytes below `base` (changed ranges listed in
 * `dirty`); when `seg` is set, the output continues with zeros up to `off0` and then `seg`.
 */
export interface EditPlan {
  pre: Buffer;
  base: number;
  dirty: Array<[number, number]>;
  off0: number;
  seg?: Buffer;
}

/** The edited file as one new buffer, or null when nothing changes. The input is not modified. */
export function editParsed(e: ParsedElf, edits: ElfEdits): Buffer | null {
  const plan = planEdit(e, edits, false);
  if (!plan) return null;
  return plan.pre.length === plan.base ? plan.pre : plan.pre.subarray(0, plan.base);
}

/**
 * Compute an edit. With `mutate`, the parsed buffer itself receives the changes below its end
 * and the appended segment comes separately, so a bulk caller can write only what changed.
 */
export function planEdit(e: ParsedElf, edits: ElfEdits, mutate: boolean): EditPlan | null {
  const { buf } = e;
  const wantInterp = edits.interpreter;
  if (wantInterp !== undefined && e.interpIndex < 0) fail(e, 'has no program interpreter (PT_INTERP); it is most likely statically linked');
  if (edits.rpath !== undefined && e.dynIndex < 0) fail(e, 'has no dynamic section; it is most likely statically linked');
  if (typeof edits.rpath === 'string' && e.strSize === 0) fail(e, 'has no dynamic string table (DT_STRTAB)');
  // glibc asserts at start-up that a static-pie program has no RPATH/RUNPATH: adding one kills it.
  if (typeof edits.rpath === 'string' && e.interpIndex < 0 && e.dyn.some((d) => d.tag === DT_FLAGS_1 && d.val & DF_1_PIE) && !e.dyn.some((d) => d.tag === DT_RPATH || d.tag === DT_RUNPATH)) {
    fail(e, 'is a static-pie program; glibc refuses to start one that has a RUNPATH');
  }
  const page = edits.pageSize ?? defaultPageSize(e.machine);
  if (!Number.isInteger(page) || page <= 0 || (page & (page - 1)) !== 0) fail(e, `invalid page size ${page}`);

  const interpChange = wantInterp !== undefined && wantInterp !== e.interp;
  const interpBytes = interpChange ? cstrBytes(e, wantInterp, 'interpreter') : undefined;

  // Working copies: the dynamic entries and, when touched, the string table.
  let dyn: DynEntry[] = e.dyn;
  let str: Buffer | undefined;
  let strLen = e.strSize;
  let strMoves = false;
  const strCopy = (): Buffer => (str ??= Buffer.from(buf.subarray(e.strOff, e.strOff + e.strSize)));
  const strtabAddr = e.dyn.find((d) => d.tag === DT_STRTAB)?.val ?? -1;
  const own = ownSegment(e);
  const ownSeg = own >= 0 ? e.phdrs[own] : undefined;
  const inOwn = (addr: number): boolean => !!ownSeg && addr >= ownSeg.vaddr && addr < ownSeg.vaddr + ownSeg.memsz;

  let rpathChange = false;
  const rpIdx = dyn.flatMap((d, i) => (d.tag === DT_RPATH || d.tag === DT_RUNPATH ? [i] : []));
  if (edits.rpath === null) {
    if (rpIdx.length) {
      rpathChange = true;
      dyn = dyn.filter((d) => d.tag !== DT_RPATH && d.tag !== DT_RUNPATH);
    }
  } else if (edits.rpath !== undefined) {
    const wantTag = edits.forceRpath ? DT_RPATH : DT_RUNPATH;
    const value = cstrBytes(e, edits.rpath, 'rpath');
    const primary = rpIdx.find((i) => dyn[i].tag === DT_RUNPATH) ?? rpIdx[0];
    if (primary === undefined || rpIdx.length > 1 || dyn[primary].tag !== wantTag || dynString(e, dyn[primary].val) !== edits.rpath) {
      rpathChange = true;
      dyn = dyn.map((d) => ({ ...d }));
      let entry: DynEntry;
      let oldLen = -1;
      if (primary !== undefined) {
        entry = dyn[primary];
        oldLen = Buffer.byteLength(dynString(e, entry.val), 'utf8');
        dyn = dyn.filter((d, i) => i === primary || (d.tag !== DT_RPATH && d.tag !== DT_RUNPATH));
      } else {
        entry = { tag: wantTag, val: 0 };
        // Conventionally after DT_NEEDED/DT_SONAME; the position has no meaning to the loader.
        let at = 0;
        for (let i = 0; i < dyn.length; i++) if (dyn[i].tag === DT_NEEDED || dyn[i].tag === DT_SONAME) at = i + 1;
        dyn.splice(at, 0, entry);
      }
      const cur = oldLen;
      entry.tag = wantTag;
      if (primary !== undefined && dynString(e, entry.val) === edits.rpath) {
        // only the tag kind changes
      } else if (edits.rpath === '' && buf[e.strOff] === 0) {
        entry.val = 0;
      } else if (cur >= 0 && value.length <= cur + 1 && !stringShared(dyn, entry, entry.val, cur)) {
        const s = strCopy();
        value.copy(s, entry.val);
        s.fill(0, entry.val + value.length, entry.val + cur + 1);
      } else {
        const s = strCopy();
        // A string this engine appended before sits at the end of a table it moved: reuse its room.
        if (cur >= 0 && inOwn(strtabAddr) && onlyZeros(s, entry.val + cur, strLen) && !stringShared(dyn, entry, entry.val, strLen - entry.val)) strLen = entry.val;
        const grown = Buffer.allocUnsafe(strLen + value.length);
        s.copy(grown, 0, 0, strLen);
        value.copy(grown, strLen);
        str = grown;
        entry.val = strLen;
        strLen += value.length;
        strMoves = true;
      }
    }
  }
  if (!interpChange && !rpathChange) return null;

  const interpPh = e.interpIndex >= 0 ? e.phdrs[e.interpIndex] : undefined;
  let interpMoves = !!interpBytes && interpBytes.length > interpPh!.filesz;
  let dynMoves = dyn.length + 1 > e.dynSlots;
  const needSegment = interpMoves || strMoves || dynMoves;

  if (!needSegment) {
    const pre = mutate ? buf : Buffer.from(buf);
    const out = new PrefixWriter(pre, e);
    if (interpBytes) out.cstr(interpPh!.offset, interpBytes, interpPh!.filesz);
    if (str) out.bytes(e.strOff, str.subarray(0, strLen));
    out.dyn(dyn, e.dynOff, Math.max(e.dyn.length, dyn.length) + 1);
    return { pre, base: buf.length, dirty: out.ranges(), off0: -1 };
  }

  // Everything inside a segment relonix added before is carried into the rebuilt one.
  if (ownSeg) {
    if (interpPh && inOwn(interpPh.vaddr)) interpMoves = true;
    if (e.dynIndex >= 0 && inOwn(e.phdrs[e.dynIndex].vaddr)) dynMoves = true;
    if (strtabAddr >= 0 && inOwn(strtabAddr) && !strMoves) {
      strCopy();
      strMoves = true;
    }
  }
  // MIPS locates its debug map relative to the dynamic entry's own address (DT_MIPS_RLD_MAP_REL).
  if (dynMoves && e.machine === EM.MIPS && e.dyn.some((d) => d.tag === 0x70000035)) fail(e, 'the dynamic table has no free slot and cannot be moved on MIPS');
  const interpOut = interpMoves ? (interpBytes ?? cstrBytes(e, e.interp!, 'interpreter')) : undefined;

  const loads = e.phdrs.filter((p, i) => p.type === PT_LOAD && i !== own);
  if (!loads.length) fail(e, 'has no loadable segment to extend');
  const first = loads.reduce((a, b) => (b.vaddr < a.vaddr ? b : a));
  const maxEnd = loads.reduce((m, p) => Math.max(m, p.vaddr + p.memsz), 0);

  const ent = e.is64 ? 16 : 8;
  const phCount = own >= 0 ? e.phdrs.length : e.phdrs.length + 1;
  const phSize = phCount * e.phentsize;
  let cur = alignUp(phSize, 16);
  const dynRel = cur;
  const dynSlots = dynMoves ? dyn.length + 1 + SPARE_DYN : 0;
  cur += dynSlots * ent;
  const interpRel = cur;
  cur += interpOut ? interpOut.length : 0;
  const strRel = cur;
  cur += strMoves ? strLen : 0;
  const segSize = cur;

  const base = ownSeg ? ownSeg.offset : buf.length;
  let off0 = alignUp(base, page);
  const minV = alignUp(maxEnd, page);
  const delta = first.vaddr - first.offset;
  let vaddr0 = minV;
  // Kernels before 5.18 (AT_PHDR) and static-pie start-up code (l_addr + e_phoff) find the header
  // table at e_phoff past the load address, so keep that true for every object.
  if (delta >= 0 && delta % page === 0) {
    const pad = Math.max(0, minV - (off0 + delta));
    // A huge .bss would need as much zero padding; then only kernels that locate the header table
    // through the PT_LOAD holding it (5.18+) run a dynamically linked program edited this way.
    if (pad <= MAX_PAD) {
      off0 += pad;
      vaddr0 = off0 + delta;
    }
  }
  if (vaddr0 + segSize > (e.is64 ? Number.MAX_SAFE_INTEGER : 0xffffffff)) fail(e, 'no address space is left above the existing segments for a new one');

  const seg: Phdr = { type: PT_LOAD, flags: PF_R | PF_W, offset: off0, vaddr: vaddr0, paddr: vaddr0, filesz: segSize, memsz: segSize, align: page };
  const ph = e.phdrs.map((p) => ({ ...p }));
  if (own >= 0) ph[own] = seg;
  else {
    let lastLoad = -1;
    for (let i = 0; i < ph.length; i++) if (ph[i].type === PT_LOAD) lastLoad = i;
    ph.splice(lastLoad + 1, 0, seg);
  }
  for (const p of ph) {
    if (p.type === PT_PHDR) place(p, off0, vaddr0, phSize);
    else if (p.type === PT_INTERP && interpOut) place(p, off0 + interpRel, vaddr0 + interpRel, interpOut.length);
    else if (p.type === PT_DYNAMIC && dynMoves) place(p, off0 + dynRel, vaddr0 + dynRel, dynSlots * ent);
  }
  if (strMoves) {
    dyn = dyn.map((d) => (d.tag === DT_STRTAB ? { tag: d.tag, val: vaddr0 + strRel } : d.tag === DT_STRSZ ? { tag: d.tag, val: strLen } : d));
  }

  // The appended segment is built on its own; below `base` only the few changed bytes are written.
  // When copying, one buffer holds both, the segment being a view of its tail.
  let pre: Buffer;
  let segBuf: Buffer;
  if (mutate && base === buf.length) {
    pre = buf;
    segBuf = Buffer.alloc(segSize);
  } else {
    pre = Buffer.allocUnsafe(off0 + segSize);
    buf.copy(pre, 0, 0, base);
    pre.fill(0, base);
    segBuf = pre.subarray(off0);
  }
  const out = new PrefixWriter(pre, e);
  const sio = new Io(segBuf, e.is64, e.le);
  out.header(off0, phCount);
  for (let i = 0; i < ph.length; i++) writePhdr(sio, i * e.phentsize, ph[i]);
  if (dynMoves) writeDyn(sio, dyn, dynRel, dynSlots);
  else out.dyn(dyn, e.dynOff, Math.max(e.dyn.length, dyn.length) + 1);
  if (interpOut) interpOut.copy(segBuf, interpRel);
  else if (interpBytes) out.cstr(interpPh!.offset, interpBytes, interpPh!.filesz);
  if (strMoves) str!.copy(segBuf, strRel, 0, strLen);
  else if (str) out.bytes(e.strOff, str.subarray(0, strLen));

  // Keep section headers telling the truth for tools that read them (readelf, strip, gdb).
  const dynPh = e.dynIndex >= 0 ? e.phdrs[e.dynIndex] : undefined;
  for (const sh of e.shdrs) {
    let o = -1;
    let a = 0;
    let size = 0;
    if (interpOut && sh.type === SHT_PROGBITS && sh.addr === interpPh!.vaddr && (sh.flags & SHF_ALLOC)) [o, a, size] = [off0 + interpRel, vaddr0 + interpRel, interpOut.length];
    else if (strMoves && sh.type === SHT_STRTAB && sh.addr === strtabAddr && (sh.flags & SHF_ALLOC)) [o, a, size] = [off0 + strRel, vaddr0 + strRel, strLen];
    else if (dynMoves && sh.type === SHT_DYNAMIC && dynPh && sh.addr === dynPh.vaddr) [o, a, size] = [off0 + dynRel, vaddr0 + dynRel, dynSlots * ent];
    if (o >= 0) out.section(e.shoff + sh.index * e.shentsize, a, o, size);
  }
  if (pre !== buf) return { pre, base: off0 + segSize, dirty: [[0, off0 + segSize]], off0: -1 };
  return { pre, base, dirty: out.ranges(), off0, seg: segBuf };
}

/** Writes below the end of the original file, remembering which ranges changed. */
class PrefixWriter {
  private readonly io: Io;
  private readonly touched: Array<[number, number]> = [];
  constructor(private readonly buf: Buffer, private readonly e: ParsedElf) {
    this.io = new Io(buf, e.is64, e.le);
  }
  private touch(a: number, b: number): void {
    this.touched.push([a, b]);
  }
  header(phoff: number, phnum: number): void {
    const is64 = this.e.is64;
    this.io.wword(is64 ? 32 : 28, phoff);
    this.io.w16(is64 ? 56 : 44, phnum);
    this.touch(is64 ? 32 : 28, is64 ? 58 : 46);
  }
  bytes(at: number, data: Buffer): void {
    data.copy(this.buf, at);
    this.touch(at, at + data.length);
  }
  cstr(at: number, data: Buffer, room: number): void {
    data.copy(this.buf, at);
    this.buf.fill(0, at + data.length, at + room);
    this.touch(at, at + room);
  }
  dyn(dyn: DynEntry[], at: number, slots: number): void {
    writeDyn(this.io, dyn, at, slots);
    this.touch(at, at + slots * (this.e.is64 ? 16 : 8));
  }
  section(at: number, addr: number, off: number, size: number): void {
    if (this.e.is64) {
      this.io.w64(at + 16, addr);
      this.io.w64(at + 24, off);
      this.io.w64(at + 32, size);
      this.touch(at + 16, at + 40);
    } else {
      this.io.w32(at + 12, addr);
      this.io.w32(at + 16, off);
      this.io.w32(at + 20, size);
      this.touch(at + 12, at + 24);
    }
  }
  /** Changed ranges, sorted and merged. */
  ranges(): Array<[number, number]> {
    const r = [...this.touched].sort((x, y) => x[0] - y[0]);
    const out: Array<[number, number]> = [];
    for (const [a, b] of r) {
      const last = out[out.length - 1];
      if (last && a <= last[1]) last[1] = Math.max(last[1], b);
      else out.push([a, b]);
    }
    return out;
  }
}

function onlyZeros(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

function place(p: Phdr, off: number, addr: number, size: number): void {
  p.offset = off;
  p.vaddr = addr;
  p.paddr = addr;
  p.filesz = size;
  p.memsz = size;
}

function writePhdr(io: Io, o: number, p: Phdr): void {
  io.w32(o, p.type);
  if (io.is64) {
    io.w32(o + 4, p.flags);
    io.w64(o + 8, p.offset);
    io.w64(o + 16, p.vaddr);
    io.w64(o + 24, p.paddr);
    io.w64(o + 32, p.filesz);
    io.w64(o + 40, p.memsz);
    io.w64(o + 48, p.align);
  } else {
    io.w32(o + 4, p.offset);
    io.w32(o + 8, p.vaddr);
    io.w32(o + 12, p.paddr);
    io.w32(o + 16, p.filesz);
    io.w32(o + 20, p.memsz);
    io.w32(o + 24, p.flags);
    io.w32(o + 28, p.align);
  }
}

/** Write the entries and DT_NULL into `slots` slots (the terminator and any spare ones). */
function writeDyn(io: Io, dyn: DynEntry[], at: number, slots: number): void {
  const ent = io.is64 ? 16 : 8;
  for (let i = 0; i < slots; i++) {
    const d = i < dyn.length ? dyn[i] : { tag: 0, val: 0 };
    io.wword(at + i * ent, d.tag);
    io.wword(at + i * ent + ent / 2, d.val);
  }
}
