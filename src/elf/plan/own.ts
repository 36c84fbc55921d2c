// Recognising the segment this engine appended in an earlier edit, so that a later edit rebuilds it
// instead of stacking another one.
import { DT, DT_PTR_TAGS, PF, PT, SHF } from '../consts.ts';
import { lastValue, type ParsedElf } from '../reader.ts';

const alignUp = (v: number, a: number): number => Math.ceil(v / a) * a;

/**
 * Index of a PT_LOAD this engine appended earlier and may rebuild, or -1: the last segment of the
 * file, writable, with no bytes past its file size, overlapping no other segment (above them, or in
 * a gap between them), and made of nothing but what relonix puts there (program header table, dynamic table, interpreter, string table),
 * laid end to end from its start to its end.
 */
export function ownSegment(e: ParsedElf): number {
  let last = -1;
  for (let i = 0; i < e.phdrs.length; i++) {
    const p = e.phdrs[i]!;
    if (p.type === PT.LOAD && (last < 0 || p.offset > e.phdrs[last]!.offset)) last = i;
  }
  if (last < 0) return -1;
  const s = e.phdrs[last]!;
  if (s.offset + s.filesz !== e.buf.length || s.filesz !== s.memsz || s.flags !== (PF.R | PF.W)) return -1;
  const inside = (a: number): boolean => a >= s.vaddr && a < s.vaddr + s.memsz;
  for (let i = 0; i < e.phdrs.length; i++) {
    const p = e.phdrs[i]!;
    if (i === last) continue;
    if (p.type === PT.LOAD && p.vaddr < s.vaddr + s.memsz && p.vaddr + p.memsz > s.vaddr) return -1;
    const known = p.type === PT.PHDR || p.type === PT.INTERP || p.type === PT.DYNAMIC;
    if (!known && p.filesz > 0 && p.offset < s.offset + s.filesz && p.offset + p.filesz > s.offset) return -1;
  }
  if (e.shdrs.length && e.shoff + e.shdrs.length * e.shentsize > s.offset) return -1;
  const strtab = lastValue(e.dyn, DT.STRTAB);
  const dynPh = e.dynIndex >= 0 ? e.phdrs[e.dynIndex] : undefined;
  const interpPh = e.interpIndex >= 0 ? e.phdrs[e.interpIndex] : undefined;
  for (const d of e.dyn) if (DT_PTR_TAGS.has(d.tag) && d.tag !== DT.STRTAB && inside(d.val)) return -1;
  for (const sh of e.shdrs) {
    if (!(sh.flags & SHF.ALLOC) || !inside(sh.addr)) continue;
    if (sh.addr !== strtab && sh.addr !== dynPh?.vaddr && sh.addr !== interpPh?.vaddr) return -1;
  }
  // The parts relonix writes, in the order it writes them, must fill the segment.
  const parts: Array<[number, number]> = [];
  const tableAt = s.vaddr + (e.phoff - s.offset);
  if (e.phoff >= s.offset && e.phoff < s.offset + s.filesz) parts.push([tableAt, tableAt + e.phdrs.length * e.phentsize]);
  if (dynPh && inside(dynPh.vaddr)) parts.push([dynPh.vaddr, dynPh.vaddr + dynPh.memsz]);
  if (interpPh && inside(interpPh.vaddr)) parts.push([interpPh.vaddr, interpPh.vaddr + interpPh.memsz]);
  if (strtab !== undefined && inside(strtab)) parts.push([strtab, strtab + e.strSize]);
  parts.sort((a, b) => a[0] - b[0]);
  let at = s.vaddr;
  for (const [from, to] of parts) {
    if (from < at || from > alignUp(at, 16)) return -1;
    at = to;
  }
  return at === s.vaddr + s.memsz ? last : -1;
}
