// Where the new segment and the program header table go.
//
// Kernels before 5.18 (RHEL 7 and 8) pass AT_PHDR = load address + e_phoff, and static-pie
// start-up code computes the same, so the table must stay mapped at the first PT_LOAD's
// (p_vaddr - p_offset) + e_phoff. In order of preference:
// - the table already has room (a segment relonix added is rebuilt in its slot);
// - the table moves into the new segment, placed so that its address minus its offset equals the
//   first PT_LOAD's (costs zero padding up to the end of .bss, so only when that is small);
// - the table moves to the end of the first PT_LOAD, which grows over it: into the padding before
//   the next segment's bytes, or into room made by shifting the rest of the file by whole pages;
// - the congruent new segment with up to 256 MiB of padding;
// - for libraries, and files whose first PT_LOAD is itself not congruent, anywhere above the others.
// Above the others is where a new segment goes, unless no address space is left there (an IA-64
// region ends): then it goes in the first gap between segments that holds it, as patchelf finds room.
import { defaultPageSize, EM, PF, PT, SHT } from '../consts.ts';
import { ElfError } from '../error.ts';
import { IA64_REGION } from '../layout.ts';
import type { ParsedElf, Phdr } from '../reader.ts';

/** Most zero padding accepted to keep a new segment holding the header table congruent with the first one. */
const MAX_PAD = 16 << 20;
/** Most padding accepted when the table cannot stay in the first segment either. */
const MAX_PAD_LAST_RESORT = 256 << 20;

export const alignUp = (v: number, a: number): number => Math.ceil(v / a) * a;
const alignDown = (v: number, a: number): number => Math.floor(v / a) * a;

/**
 * Where address space ends for a segment that starts at `vaddr`. An IA-64 region (as layout.ts
 * carries it: region × 2^51 + offset) maps 2^44 bytes less a page under Linux's 16 KiB pages.
 */
function addressEnd(e: ParsedElf, vaddr: number): number {
  if (e.is64 && e.machine === EM.IA64) return alignDown(vaddr, IA64_REGION) + 2 ** 44 - 0x10000;
  return e.is64 ? Number.MAX_SAFE_INTEGER : 0x100000000;
}

/** The lowest address above a PT_LOAD where `size` bytes fit before the next one and within address space, if any. */
function gapFor(e: ParsedElf, own: number, size: number, align: number): number | undefined {
  const page = Math.max(align, defaultPageSize(e.machine));
  const loads = e.phdrs.filter((p, i) => p.type === PT.LOAD && i !== own).sort((a, b) => a.vaddr - b.vaddr);
  for (let i = 0; i < loads.length; i++) {
    const at = alignUp(loads[i]!.vaddr + loads[i]!.memsz, page);
    const next = loads[i + 1];
    const fits = next === undefined || alignUp(at + size, page) <= alignDown(next.vaddr, page);
    if (fits && at + size <= addressEnd(e, at)) return at;
  }
  return undefined;
}

export interface SegmentContent {
  dynBytes: number;
  interpBytes: number;
  strBytes: number;
}

export interface SegmentChoice {
  /** Index of the segment relonix added before, rebuilt in place, or -1. */
  own: number;
  align: number;
  offset: number;
  vaddr: number;
  size: number;
  /** Where the old file's content stops (the old own segment is dropped). */
  base: number;
  shift?: { at: number; by: number };
  /** The table: at the start of the segment, or at `offset` in the (grown) first PT_LOAD, or where it was. */
  table: { where: 'segment' } | { where: 'first'; offset: number; load: number; end: number } | { where: 'kept' };
  count: number;
  rel: { dyn: number; interp: number; str: number };
}

/**
 * The alignment of the new segment: the page size asked for, raised to the file's own PT_LOAD
 * alignment up to the largest page the machine's kernels use (ld.so refuses a segment whose
 * alignment is below the running page size, so a library linked for 64 KiB pages keeps them).
 */
export function segmentAlign(e: ParsedElf, page: number, own: number): number {
  const loads = e.phdrs.filter((p, i) => p.type === PT.LOAD && i !== own && p.align > 0 && (p.align & (p.align - 1)) === 0);
  const file = loads.reduce((m, p) => Math.max(m, p.align), 0);
  return Math.max(page, Math.min(file, defaultPageSize(e.machine)));
}

interface Geometry {
  first: Phdr;
  firstIndex: number;
  maxEnd: number;
  delta: number;
}

function geometry(e: ParsedElf, own: number): Geometry {
  let firstIndex = -1;
  let maxEnd = 0;
  e.phdrs.forEach((p, i) => {
    if (p.type !== PT.LOAD || i === own) return;
    if (firstIndex < 0 || p.vaddr < e.phdrs[firstIndex]!.vaddr) firstIndex = i;
    maxEnd = Math.max(maxEnd, p.vaddr + p.memsz);
  });
  if (firstIndex < 0) throw new ElfError(e.name, 'has no loadable segment to extend');
  const first = e.phdrs[firstIndex]!;
  return { first, firstIndex, maxEnd, delta: first.vaddr - first.offset };
}

export function chooseSegment(e: ParsedElf, content: SegmentContent, own: number, page: number): SegmentChoice {
  const align = segmentAlign(e, page, own);
  const g = geometry(e, own);
  const ownSeg = own >= 0 ? e.phdrs[own] : undefined;
  const count = own >= 0 ? e.phdrs.length : e.phdrs.length + 1;
  const tableInOwn = !!ownSeg && e.phoff >= ownSeg.offset && e.phoff < ownSeg.offset + ownSeg.filesz;
  const base = ownSeg ? ownSeg.offset : e.buf.length;
  const body = (start: number): SegmentChoice['rel'] & { end: number } => {
    const dyn = start;
    const interp = dyn + content.dynBytes;
    const str = interp + content.interpBytes;
    return { dyn, interp, str, end: str + content.strBytes };
  };
  const make = (table: SegmentChoice['table'], offset: number, wanted: number, shift?: SegmentChoice['shift']): SegmentChoice => {
    const r = body(table.where === 'segment' ? alignUp(count * e.phentsize, 16) : 0);
    // a segment holding the table must sit where it was put; any other may take a gap
    const vaddr = wanted + r.end <= addressEnd(e, wanted) ? wanted : table.where === 'segment' ? undefined : gapFor(e, own, r.end, align);
    if (vaddr === undefined) throw new ElfError(e.name, 'no address space is left above the existing segments for a new one, nor a gap between them');
    return { own, align, offset, vaddr, size: r.end, base, shift, table, count, rel: { dyn: r.dyn, interp: r.interp, str: r.str } };
  };
  const minV = alignUp(g.maxEnd, align);
  if (ownSeg && !tableInOwn) return make({ where: 'kept' }, alignUp(base, align), minV);
  const congruent = g.delta >= 0 && g.delta % align === 0;
  const padded = (limit: number): SegmentChoice | undefined => {
    const off0 = alignUp(base, align);
    const pad = Math.max(0, minV - (off0 + g.delta));
    return congruent && pad <= limit ? make({ where: 'segment' }, off0 + pad, off0 + pad + g.delta) : undefined;
  };
  const cheap = padded(MAX_PAD);
  if (cheap) return cheap;
  const grown = own < 0 ? growFirst(e, g, count, align) : undefined;
  if (grown) {
    const end = grown.shift ? base + grown.shift.by : base;
    const maxEnd = Math.max(g.maxEnd, g.first.vaddr + (grown.end - g.first.offset));
    return make({ where: 'first', offset: grown.at, load: g.firstIndex, end: grown.end }, alignUp(end, align), alignUp(maxEnd, align), grown.shift);
  }
  const last = padded(MAX_PAD_LAST_RESORT);
  if (last) return last;
  // Only libraries (no PT_INTERP: AT_PHDR is a program's) and files whose first PT_LOAD is itself
  // not congruent, which leave nothing to keep, may have their table anywhere.
  if (congruent && e.interpIndex >= 0)
    throw new ElfError(e.name, 'has no room to keep its program header table where kernels before 5.18 look for it (AT_PHDR)');
  return make({ where: 'segment' }, alignUp(base, align), minV);
}

/**
 * Room for the table right after the first PT_LOAD's bytes, which grows over it: there must be no
 * .bss to grow into and free addresses up to the next segment; the file bytes are the padding
 * before the next segment's, or a gap made by moving everything after them on by whole pages.
 */
function growFirst(e: ParsedElf, g: Geometry, count: number, align: number): { at: number; end: number; shift?: { at: number; by: number } } | undefined {
  const { first } = g;
  const tableEnd = e.phoff + e.phdrs.length * e.phentsize;
  if (first.filesz !== first.memsz || e.phoff < first.offset || tableEnd > first.offset + first.filesz) return undefined;
  const contentEnd = first.offset + first.filesz;
  const at = alignUp(contentEnd, e.layout.wordSize);
  const end = at + count * e.phentsize;
  if (!addressRoom(e, g, end, Math.max(align, defaultPageSize(e.machine)))) return undefined;
  const ranges = occupied(e, g.firstIndex);
  if (end <= e.buf.length && !ranges.some(([a, b]) => a < end && b > at)) return { at, end };
  // Everything from contentEnd on moves; nothing may straddle that point.
  if (ranges.some(([a, b]) => a < contentEnd && b > contentEnd)) return undefined;
  const shifted = e.phdrs.filter((p) => p.type === PT.LOAD && p.offset >= contentEnd);
  const unit = shifted.reduce((m, p) => (p.align > m && (p.align & (p.align - 1)) === 0 ? p.align : m), align);
  return { at, end, shift: { at: contentEnd, by: alignUp(end - contentEnd, unit) } };
}

/** Is there address space for the first PT_LOAD to end at file offset `end`, without sharing a page with the next? */
function addressRoom(e: ParsedElf, g: Geometry, end: number, page: number): boolean {
  const { first } = g;
  const oldEnd = first.vaddr + first.memsz;
  const newEnd = first.vaddr + (end - first.offset);
  let next: Phdr | undefined;
  for (const p of e.phdrs) if (p.type === PT.LOAD && p.vaddr >= oldEnd && (!next || p.vaddr < next.vaddr)) next = p;
  if (!next) return true;
  return newEnd <= next.vaddr && (alignUp(newEnd, page) === alignUp(oldEnd, page) || alignUp(newEnd, page) <= alignDown(next.vaddr, page));
}

/** File ranges in use, other than the first PT_LOAD: segments, sections and the section header table. */
function occupied(e: ParsedElf, firstIndex: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  e.phdrs.forEach((p, i) => {
    if (i !== firstIndex && p.filesz > 0) out.push([p.offset, p.offset + p.filesz]);
  });
  for (const s of e.shdrs) if (s.type !== SHT.NOBITS && s.size > 0) out.push([s.offset, s.offset + s.size]);
  if (e.shdrs.length) out.push([e.shoff, e.shoff + e.shdrs.length * e.shentsize]);
  return out;
}

/** The new segment's program header. */
export function segmentHeader(c: SegmentChoice): Phdr {
  return { type: PT.LOAD, flags: PF.R | PF.W, offset: c.offset, vaddr: c.vaddr, paddr: c.vaddr, filesz: c.size, memsz: c.size, align: c.align };
}
