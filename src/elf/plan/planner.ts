// The planner: from a parsed file and the edits asked for, the layout of the edited file, decided
// once and before a byte is written (writer.ts then emits it).
//
// Values that fit where the old ones were are written in place and the file does not grow.
// Otherwise one PT_LOAD is appended at the end of the file holding the moved dynamic table (with
// spare slots), the interpreter and a copy of .dynstr with the new strings, and, where it goes
// there (plan/segment.ts), the program header table. Nothing that code or other tables point at
// moves, so every other DT_* address, symbol and relocation stays valid; only PT_PHDR, PT_INTERP,
// PT_DYNAMIC, DT_STRTAB/DT_STRSZ and the matching section headers change (and, when the file must
// make room for the header table, the file offsets behind it). PT_NOTE, PT_GNU_RELRO and the
// sections they cover stay where they are. The new segment is writable (a moved .dynamic must be:
// the loader writes DT_DEBUG) and placed above every existing segment, or in a gap between them where
// no address space is left above (plan/segment.ts). A later edit recognises
// the segment it added (plan/own.ts) and rebuilds it instead of stacking another one.
import { DF_1_PIE, DT, defaultPageSize, EM, PT } from '../consts.ts';
import { ElfError } from '../error.ts';
import { type DynEntry, lastValue, type ParsedElf, type Phdr } from '../reader.ts';
import { cstrBytes, rpathDraft } from './dynamic.ts';
import { ownSegment } from './own.ts';
import { type Move, sectionUpdates } from './sections.ts';
import { chooseSegment, type SegmentChoice, segmentHeader } from './segment.ts';
import { placeSearchPath, type StrDraft } from './strings.ts';
import type { ElfEdits, Layout, Place } from './types.ts';

/** Spare dynamic slots left in a moved table so a later added entry needs no move. */
const SPARE_DYN = 4;

function fail(e: ParsedElf, problem: string): never {
  throw new ElfError(e.name, problem);
}

/** Refuse edits the file cannot take; returns the page size to align to. */
function check(e: ParsedElf, edits: ElfEdits): number {
  if (edits.interpreter !== undefined && e.interpIndex < 0) fail(e, 'has no program interpreter (PT_INTERP); it is most likely statically linked');
  if (edits.rpath !== undefined && e.dynIndex < 0) fail(e, 'has no dynamic section; it is most likely statically linked');
  if (typeof edits.rpath === 'string' && e.strSize === 0) fail(e, 'has no dynamic string table (DT_STRTAB)');
  // glibc asserts at start-up that a static-pie program has no RPATH/RUNPATH: adding one kills it.
  const staticPie = e.interpIndex < 0 && e.dyn.some((d) => d.tag === DT.FLAGS_1 && d.val & DF_1_PIE);
  if (typeof edits.rpath === 'string' && staticPie && !e.dyn.some((d) => d.tag === DT.RPATH || d.tag === DT.RUNPATH)) {
    fail(e, 'is a static-pie program; glibc refuses to start one that has a RUNPATH');
  }
  const page = edits.pageSize ?? defaultPageSize(e.machine);
  if (!Number.isInteger(page) || page <= 0 || (page & (page - 1)) !== 0) fail(e, `invalid page size ${page}`);
  return page;
}

/** The layout of the edited file, or null when the edit changes nothing. */
export function planLayout(e: ParsedElf, edits: ElfEdits): Layout | null {
  const page = check(e, edits);
  const interpPh = e.interpIndex >= 0 ? e.phdrs[e.interpIndex] : undefined;
  const interp = edits.interpreter !== undefined && edits.interpreter !== e.interp ? cstrBytes(e, edits.interpreter, 'interpreter') : undefined;
  const draft = rpathDraft(e, edits);
  const own = ownSegment(e);
  const ownSeg = own >= 0 ? e.phdrs[own] : undefined;
  const inOwn = (addr: number | undefined): boolean => !!ownSeg && addr !== undefined && addr >= ownSeg.vaddr && addr < ownSeg.vaddr + ownSeg.memsz;
  const strtabAddr = lastValue(e.dyn, DT.STRTAB);
  const str = placeSearchPath(e, draft, inOwn(strtabAddr));
  if (!interp && !draft.changed) return null;

  let interpMoves = !!interp && interp.length > interpPh!.filesz;
  let dynMoves = e.dynIndex >= 0 && draft.dyn.length + 1 > e.dynSlots;
  if (!interpMoves && !str.moves && !dynMoves) return inPlace(e, draft.dyn, draft.changed, interp, str);

  // Everything inside a segment relonix added before is carried into the rebuilt one.
  if (interpPh && inOwn(interpPh.vaddr)) interpMoves = true;
  if (e.dynIndex >= 0 && inOwn(e.phdrs[e.dynIndex]!.vaddr)) dynMoves = true;
  if (inOwn(strtabAddr) && !str.moves) {
    str.str ??= Buffer.from(e.buf.subarray(e.strOff, e.strOff + e.strSize));
    str.moves = true;
  }
  // MIPS locates its debug map relative to the dynamic entry's own address (DT_MIPS_RLD_MAP_REL).
  if (dynMoves && e.machine === EM.MIPS && e.dyn.some((d) => d.tag === DT.MIPS_RLD_MAP_REL))
    fail(e, 'the dynamic table has no free slot and cannot be moved on MIPS');
  const interpOut = interpMoves ? (interp ?? cstrBytes(e, e.interp!, 'interpreter')) : undefined;
  const dynSlots = dynMoves ? draft.dyn.length + 1 + SPARE_DYN : 0;
  const ent = e.layout.dyn.size;
  const c = chooseSegment(e, { dynBytes: dynSlots * ent, interpBytes: interpOut?.length ?? 0, strBytes: str.moves ? str.len : 0 }, own, page);
  return withSegment(e, c, { dyn: draft.dyn, changed: draft.changed, dynSlots, interp, interpOut, str });
}

/** An edit that fits: every value is written where the old one was. */
function inPlace(e: ParsedElf, dyn: DynEntry[], changed: boolean, interp: Buffer | undefined, str: StrDraft): Layout {
  const layout: Layout = { phdrs: e.phdrs, sections: [] };
  if (interp) {
    const p = e.phdrs[e.interpIndex]!;
    layout.interp = { offset: p.offset, bytes: interp, room: p.filesz, fresh: false };
  }
  if (str.str) layout.str = { offset: e.strOff, bytes: str.str.subarray(0, str.len), fresh: false };
  if (changed) layout.dyn = { offset: e.dynOff, slots: Math.max(e.dyn.length, dyn.length) + 1, entries: dyn, fresh: false };
  return layout;
}

interface SegmentDraft {
  dyn: DynEntry[];
  changed: boolean;
  dynSlots: number;
  interp?: Buffer;
  interpOut?: Buffer;
  str: StrDraft;
}

function place(p: Phdr, to: Place): void {
  p.offset = to.offset;
  p.vaddr = to.vaddr;
  p.paddr = to.vaddr;
  p.filesz = to.size;
  p.memsz = to.size;
}

/** An edit that needs the new segment chosen in `c`. */
function withSegment(e: ParsedElf, c: SegmentChoice, d: SegmentDraft): Layout {
  const ent = e.layout.dyn.size;
  const at = (rel: number, size: number): Place => ({ offset: c.offset + rel, vaddr: c.vaddr + rel, size });
  const phdrs = e.phdrs.map((p) => ({ ...p }));
  if (c.shift) for (const p of phdrs) if (p.offset >= c.shift.at) p.offset += c.shift.by;
  const seg = segmentHeader(c);
  if (c.own >= 0) phdrs[c.own] = seg;
  else {
    // PT_LOAD entries stay sorted by address (the loaders map the span from the first to the last):
    // after the last one below the new segment, which is every one unless it went into a gap
    let below = -1;
    phdrs.forEach((p, i) => {
      if (p.type === PT.LOAD && p.vaddr < seg.vaddr) below = i;
    });
    phdrs.splice(below + 1, 0, seg);
  }

  const tablePlace = tableLocation(e, c, phdrs);
  const moves: Move[] = [];
  const layout: Layout = { phdrs, sections: [], segment: { offset: c.offset, vaddr: c.vaddr, size: c.size, base: c.base }, shift: c.shift };
  layout.table = { offset: tablePlace.offset, fresh: c.table.where === 'first' };
  for (const p of phdrs) if (p.type === PT.PHDR) place(p, tablePlace);
  if (d.interpOut) {
    const to = at(c.rel.interp, d.interpOut.length);
    moves.push({ from: e.phdrs[e.interpIndex]!.vaddr, to });
    for (const p of phdrs) if (p.type === PT.INTERP) place(p, to);
    layout.interp = { offset: to.offset, bytes: d.interpOut, room: d.interpOut.length, fresh: true };
  } else if (d.interp) {
    const p = e.phdrs[e.interpIndex]!;
    layout.interp = { offset: p.offset + shiftOf(c, p.offset), bytes: d.interp, room: p.filesz, fresh: false };
  }
  let dyn = d.dyn;
  if (d.str.moves) {
    const to = at(c.rel.str, d.str.len);
    moves.push({ from: lastValue(e.dyn, DT.STRTAB)!, to });
    dyn = dyn.map((x) => (x.tag === DT.STRTAB ? { tag: x.tag, val: to.vaddr } : x.tag === DT.STRSZ ? { tag: x.tag, val: d.str.len } : x));
    layout.str = { offset: to.offset, bytes: d.str.str!.subarray(0, d.str.len), fresh: true };
  } else if (d.str.str) {
    layout.str = { offset: e.strOff + shiftOf(c, e.strOff), bytes: d.str.str.subarray(0, d.str.len), fresh: false };
  }
  if (d.dynSlots) {
    const to = at(c.rel.dyn, d.dynSlots * ent);
    moves.push({ from: e.phdrs[e.dynIndex]!.vaddr, to });
    for (const p of phdrs) if (p.type === PT.DYNAMIC) place(p, to);
    layout.dyn = { offset: to.offset, slots: d.dynSlots, entries: dyn, fresh: true };
  } else if (e.dynIndex >= 0 && (d.changed || d.str.moves)) {
    layout.dyn = { offset: e.dynOff + shiftOf(c, e.dynOff), slots: Math.max(e.dyn.length, dyn.length) + 1, entries: dyn, fresh: false };
  }
  layout.sections = sectionUpdates(e, moves, c.shift);
  return layout;
}

function shiftOf(c: SegmentChoice, offset: number): number {
  return c.shift && offset >= c.shift.at ? c.shift.by : 0;
}

/** Where the table is written, and the first PT_LOAD grown over it when it goes there. */
function tableLocation(e: ParsedElf, c: SegmentChoice, phdrs: Phdr[]): Place {
  const size = c.count * e.phentsize;
  if (c.table.where === 'segment') return { offset: c.offset, vaddr: c.vaddr, size };
  if (c.table.where === 'kept') {
    const home = phdrs.find((p) => p.type === PT.LOAD && e.phoff >= p.offset && e.phoff < p.offset + p.filesz);
    const vaddr = home ? home.vaddr + e.phoff - home.offset : (phdrs.find((p) => p.type === PT.PHDR)?.vaddr ?? 0);
    return { offset: e.phoff, vaddr, size };
  }
  const load = phdrs[c.table.load]!;
  load.filesz = load.memsz = c.table.end - load.offset;
  return { offset: c.table.offset, vaddr: load.vaddr + c.table.offset - load.offset, size };
}
