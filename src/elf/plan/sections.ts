// Section headers after an edit: the ones describing what moved follow it, and with a shift every
// section behind the shift point moves with the bytes. Loaders never read them; readelf, strip and
// gdb do, and must keep seeing the truth. Sections are matched by address, not by name or type,
// since toolchains name and type them in more ways than one.
import { SHF, SHT } from '../consts.ts';
import type { ParsedElf } from '../reader.ts';
import type { Place, SectionUpdate } from './types.ts';

/** Something that moved: the address it had and where it is now. */
export interface Move {
  from: number;
  to: Place;
}

export function sectionUpdates(e: ParsedElf, moves: Move[], shift?: { at: number; by: number }): SectionUpdate[] {
  const out: SectionUpdate[] = [];
  for (const sh of e.shdrs) {
    if (sh.index === 0) continue;
    const carries = sh.type !== SHT.NOBITS && sh.size > 0 && (sh.flags & SHF.ALLOC) !== 0;
    const m = carries ? moves.find((x) => x.from === sh.addr) : undefined;
    if (m) out.push({ index: sh.index, addr: m.to.vaddr, offset: m.to.offset, size: m.to.size });
    else if (shift && sh.offset >= shift.at) out.push({ index: sh.index, offset: sh.offset + shift.by });
  }
  return out;
}
