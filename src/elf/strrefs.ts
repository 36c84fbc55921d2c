// Every offset into the dynamic string table that something other than the dynamic table's own
// entries points at: dynamic symbol names and symbol version names. Linkers merge string tails
// (a RUNPATH "name" may be the last four bytes of the symbol "a_symbol_name"), so bytes of the
// table can only be overwritten when no such reference reaches them.
import { DT, EM, SHT } from './consts.ts';
import { ElfError } from './error.ts';
import { GNU_HASH_ENTRY } from './layout.ts';
import { addrToOffset, lastValue, type ParsedElf } from './reader.ts';

/** More records than any real table holds: a bound for corrupt counts and cyclic chains. */
const MAX_RECORDS = 1 << 20;

/**
 * The string offsets named by .dynsym, .gnu.version_d and .gnu.version_r, or null when the
 * symbol table's extent cannot be told (then every string counts as possibly shared).
 */
export function symbolStringRefs(e: ParsedElf): number[] | null {
  try {
    return collect(e);
  } catch (err) {
    // A table that cannot be walked is no reason to refuse the edit, only to overwrite nothing.
    if (err instanceof ElfError) return null;
    throw err;
  }
}

function collect(e: ParsedElf): number[] | null {
  const refs: number[] = [];
  const symtab = lastValue(e.dyn, DT.SYMTAB);
  if (symtab !== undefined) {
    const at = addrToOffset(e.phdrs, symtab);
    const count = at < 0 ? null : symbolCount(e, symtab);
    if (count === null) return null;
    const { sym } = e.layout;
    e.ensure(at, count * sym.size);
    if (at + count * sym.size > e.buf.length) return null;
    for (let i = 0; i < count; i++) refs.push(sym.get(e.io, at + i * sym.size, 'name'));
  }
  return versionRefs(e, refs) ? refs : null;
}

function symbolCount(e: ParsedElf, symtab: number): number | null {
  const sec = e.shdrs.find((s) => s.type === SHT.DYNSYM && s.addr === symtab && s.size > 0);
  if (sec) return Math.floor(sec.size / e.layout.sym.size);
  const hash = lastValue(e.dyn, DT.HASH);
  if (hash !== undefined) return hashChainCount(e, hash);
  const gnu = lastValue(e.dyn, DT.GNU_HASH);
  return gnu === undefined ? null : gnuHashCount(e, gnu);
}

/** DT_HASH: nbucket, nchain, ...; nchain is the number of symbols. */
function hashChainCount(e: ParsedElf, addr: number): number | null {
  const at = addrToOffset(e.phdrs, addr);
  // 64-bit s390 is the one Linux target whose hash table has 8-byte entries.
  const header = e.machine === EM.S390 && e.is64 ? e.layout.hashWide : e.layout.hash;
  if (at < 0) return null;
  e.ensure(at, header.size);
  const n = header.read(e.io, at, e.name).nchain;
  return n <= MAX_RECORDS ? n : null;
}

/** DT_GNU_HASH lists no count: it is one past the last symbol reached from the highest bucket. */
function gnuHashCount(e: ParsedElf, addr: number): number | null {
  const at = addrToOffset(e.phdrs, addr);
  if (at < 0) return null;
  const { gnuHash } = e.layout;
  e.ensure(at, gnuHash.size);
  const h = gnuHash.read(e.io, at, e.name);
  if (h.nbuckets > MAX_RECORDS || h.bloomSize > MAX_RECORDS) return null;
  const buckets = at + gnuHash.size + h.bloomSize * e.layout.wordSize;
  const chains = buckets + h.nbuckets * GNU_HASH_ENTRY;
  e.ensure(buckets, chains - buckets);
  if (chains > e.buf.length) return null;
  const { io } = e;
  let last = 0;
  for (let i = 0; i < h.nbuckets; i++) last = Math.max(last, io.u32(buckets + i * GNU_HASH_ENTRY));
  if (last < h.symoffset) return h.symoffset;
  for (let i = last; i - h.symoffset < MAX_RECORDS; i++) {
    const c = chains + (i - h.symoffset) * GNU_HASH_ENTRY;
    e.ensure(c, GNU_HASH_ENTRY);
    if (c + GNU_HASH_ENTRY > e.buf.length) return null;
    // The low bit marks the last symbol of a chain.
    if (io.u32(c) & 1) return i + 1;
  }
  return null;
}

/** Add the names of version definitions and requirements; false when a table cannot be walked. */
function versionRefs(e: ParsedElf, refs: number[]): boolean {
  const { verdef, verdaux, verneed, vernaux } = e.layout;
  const walk = (tag: number, numTag: number, visit: (at: number) => number): boolean => {
    const addr = lastValue(e.dyn, tag);
    if (addr === undefined) return true;
    let at = addrToOffset(e.phdrs, addr);
    if (at < 0) return false;
    const num = Math.min(lastValue(e.dyn, numTag) ?? MAX_RECORDS, MAX_RECORDS);
    for (let k = 0; k < num; k++) {
      const next = visit(at);
      if (next === 0) break;
      at += next;
    }
    return true;
  };
  const auxChain = (at: number, count: number, read: (a: number) => { name: number; next: number }): void => {
    for (let j = 0; j < count; j++) {
      const x = read(at);
      refs.push(x.name);
      if (x.next === 0) break;
      at += x.next;
    }
  };
  const d = walk(DT.VERDEF, DT.VERDEFNUM, (at) => {
    e.ensure(at, verdef.size);
    const v = verdef.read(e.io, at, e.name);
    auxChain(at + v.aux, v.cnt, (a) => {
      e.ensure(a, verdaux.size);
      return verdaux.read(e.io, a, e.name);
    });
    return v.next;
  });
  const n = walk(DT.VERNEED, DT.VERNEEDNUM, (at) => {
    e.ensure(at, verneed.size);
    const v = verneed.read(e.io, at, e.name);
    refs.push(v.file);
    auxChain(at + v.aux, v.cnt, (a) => {
      e.ensure(a, vernaux.size);
      return vernaux.read(e.io, a, e.name);
    });
    return v.next;
  });
  return d && n;
}
