// The on-disk layouts of the ELF structures relonix reads and writes, declared once per class
// (ELF32/ELF64) as field tables, and the one place they are decoded and encoded. Nothing else in
// the engine computes a field's offset: it asks the table.
import { EM } from './consts.ts';
import { ElfError } from './error.ts';

/** u8/u16/u32/u64 are fixed; `word` is 4 bytes in ELF32 and 8 in ELF64 (addresses, offsets, sizes). */
type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'word';
type Spec<K extends string> = ReadonlyArray<readonly [K, FieldType]>;

type Width = 1 | 2 | 4 | 8;
const WIDTH: Record<Exclude<FieldType, 'word'>, Width> = { u8: 1, u16: 2, u32: 4, u64: 8 };

type Get = (dv: DataView, o: number, le: boolean) => number;
type Put = (dv: DataView, o: number, le: boolean, v: number) => void;

// Decoders and encoders by width in bytes; a 64-bit field is read as a Number, exact below 2^53,
// which holds every address of user-space objects but IA-64's (see IA64_WORD).
const GET: Record<Width, Get> = {
  1: (dv, o) => dv.getUint8(o),
  2: (dv, o, le) => dv.getUint16(o, le),
  4: (dv, o, le) => dv.getUint32(o, le),
  8: (dv, o, le) => dv.getUint32(le ? o + 4 : o, le) * 0x100000000 + dv.getUint32(le ? o : o + 4, le),
};
const PUT: Record<Width, Put> = {
  1: (dv, o, _le, v) => dv.setUint8(o, v),
  2: (dv, o, le, v) => dv.setUint16(o, v, le),
  4: (dv, o, le, v) => dv.setUint32(o, v >>> 0, le),
  8: (dv, o, le, v) => {
    dv.setUint32(le ? o : o + 4, v % 0x100000000, le);
    dv.setUint32(le ? o + 4 : o, Math.floor(v / 0x100000000), le);
  },
};

/**
 * IA-64 splits the 64-bit address space into eight regions by its top three bits, and Linux maps a
 * program's text in region 2 (0x4000…) and its data in region 3 (0x6000…), far above 2^53. Inside a
 * region only the low bits are implemented (51 at most), so an IA-64 file's 64-bit words are carried
 * as region × 2^51 + offset: exact for regions 0 to 3, where programs live, and address arithmetic
 * inside a region is plain addition. A word with bits 51 to 60 set is no address the processor
 * implements, and no size: it is read as it is.
 */
export const IA64_REGION = 2 ** 51;
const IA64_WORD: { get: Get; put: Put } = {
  get: (dv, o, le) => {
    const hi = dv.getUint32(le ? o + 4 : o, le);
    const lo = dv.getUint32(le ? o : o + 4, le);
    const within = hi & 0x1fffffff;
    if (within >= 2 ** 19) return GET[8](dv, o, le);
    return (hi >>> 29) * IA64_REGION + within * 0x100000000 + lo;
  },
  put: (dv, o, le, v) => {
    const region = Math.floor(v / IA64_REGION);
    const rest = v - region * IA64_REGION;
    dv.setUint32(le ? o : o + 4, rest % 0x100000000, le);
    dv.setUint32(le ? o + 4 : o, ((region << 29) | Math.floor(rest / 0x100000000)) >>> 0, le);
  },
};

/** Little accessor over a buffer for one class and byte order (raw fields outside the tables: hash chains). */
export class Io {
  readonly dv: DataView;
  constructor(
    readonly buf: Uint8Array,
    readonly is64: boolean,
    readonly le: boolean,
    private readonly word8: Put = PUT[8],
  ) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  u16(o: number): number {
    return GET[2](this.dv, o, this.le);
  }
  u32(o: number): number {
    return GET[4](this.dv, o, this.le);
  }
  u64(o: number): number {
    return GET[8](this.dv, o, this.le);
  }
  w16(o: number, v: number): void {
    PUT[2](this.dv, o, this.le, v);
  }
  w32(o: number, v: number): void {
    PUT[4](this.dv, o, this.le, v);
  }
  w64(o: number, v: number): void {
    PUT[8](this.dv, o, this.le, v);
  }
  wword(o: number, v: number): void {
    (this.is64 ? this.word8 : PUT[4])(this.dv, o, this.le, v);
  }
}

/** One structure of one class: its size, each field's offset, and a decoder and encoder. */
export class Struct<K extends string> {
  readonly size: number;
  private readonly names: K[] = [];
  private readonly offs: number[] = [];
  private readonly gets: Get[] = [];
  private readonly puts: Put[] = [];
  private readonly index = {} as Record<K, number>;
  private readonly widths: number[] = [];
  /** The decoder, built once from the table as one object literal (a fixed shape is what makes decoding cheap). */
  private readonly decode: (dv: DataView, base: number, le: boolean) => Record<K, number>;
  constructor(
    readonly what: string,
    readonly is64: boolean,
    spec: Spec<K>,
    word8: { get: Get; put: Put } = { get: GET[8], put: PUT[8] },
  ) {
    let off = 0;
    for (const [name, type] of spec) {
      const width: Width = type === 'word' ? (is64 ? 8 : 4) : WIDTH[type];
      const wide = type === 'word' && is64;
      this.index[name] = this.names.length;
      this.names.push(name);
      this.offs.push(off);
      this.widths.push(width);
      this.gets.push(wide ? word8.get : GET[width]);
      this.puts.push(wide ? word8.put : PUT[width]);
      off += width;
    }
    this.size = off;
    const body = this.names.map((n, i) => `${n}: g[${i}](dv, b + ${this.offs[i]}, le)`).join(', ');
    this.decode = new Function('g', `return (dv, b, le) => ({ ${body} });`)(this.gets) as typeof this.decode;
  }
  /** Offset of a field inside the structure. */
  at(field: K): number {
    return this.offs[this.index[field]]!;
  }
  /** The byte range [start, end) of a field of the structure at `base`. */
  span(base: number, field: K): [number, number] {
    const i = this.index[field];
    return [base + this.offs[i]!, base + this.offs[i]! + this.widths[i]!];
  }
  read(io: Io, base: number, file = '<buffer>'): Record<K, number> {
    if (base < 0 || base + this.size > io.buf.length) throw new ElfError(file, `${this.what} at offset ${base} lies outside the file`, base);
    return this.decode(io.dv, base, io.le);
  }
  /** Write the fields present in `v`; fields left out keep their bytes. */
  write(io: Io, base: number, v: Partial<Record<K, number>>): void {
    for (let i = 0; i < this.names.length; i++) {
      const x = v[this.names[i]!];
      if (x !== undefined) this.puts[i]!(io.dv, base + this.offs[i]!, io.le, x);
    }
  }
  get(io: Io, base: number, field: K): number {
    const i = this.index[field];
    return this.gets[i]!(io.dv, base + this.offs[i]!, io.le);
  }
  set(io: Io, base: number, field: K, v: number): void {
    const i = this.index[field];
    this.puts[i]!(io.dv, base + this.offs[i]!, io.le, v);
  }
}

// e_ident is read byte by byte before the class is known; these are the fields after it.
const EHDR = [
  ['type', 'u16'],
  ['machine', 'u16'],
  ['version', 'u32'],
  ['entry', 'word'],
  ['phoff', 'word'],
  ['shoff', 'word'],
  ['flags', 'u32'],
  ['ehsize', 'u16'],
  ['phentsize', 'u16'],
  ['phnum', 'u16'],
  ['shentsize', 'u16'],
  ['shnum', 'u16'],
  ['shstrndx', 'u16'],
] as const;
const PHDR64 = [
  ['type', 'u32'],
  ['flags', 'u32'],
  ['offset', 'word'],
  ['vaddr', 'word'],
  ['paddr', 'word'],
  ['filesz', 'word'],
  ['memsz', 'word'],
  ['align', 'word'],
] as const;
const PHDR32 = [
  ['type', 'u32'],
  ['offset', 'word'],
  ['vaddr', 'word'],
  ['paddr', 'word'],
  ['filesz', 'word'],
  ['memsz', 'word'],
  ['flags', 'u32'],
  ['align', 'word'],
] as const;
const SHDR = [
  ['name', 'u32'],
  ['type', 'u32'],
  ['flags', 'word'],
  ['addr', 'word'],
  ['offset', 'word'],
  ['size', 'word'],
  ['link', 'u32'],
  ['info', 'u32'],
  ['addralign', 'word'],
  ['entsize', 'word'],
] as const;
const DYN = [
  ['tag', 'word'],
  ['val', 'word'],
] as const;
const SYM64 = [
  ['name', 'u32'],
  ['info', 'u8'],
  ['other', 'u8'],
  ['shndx', 'u16'],
  ['value', 'word'],
  ['size', 'word'],
] as const;
const SYM32 = [
  ['name', 'u32'],
  ['value', 'word'],
  ['size', 'word'],
  ['info', 'u8'],
  ['other', 'u8'],
  ['shndx', 'u16'],
] as const;
// Symbol versioning records are the same in both classes.
const VERDEF = [
  ['version', 'u16'],
  ['flags', 'u16'],
  ['ndx', 'u16'],
  ['cnt', 'u16'],
  ['hash', 'u32'],
  ['aux', 'u32'],
  ['next', 'u32'],
] as const;
const VERDAUX = [
  ['name', 'u32'],
  ['next', 'u32'],
] as const;
const VERNEED = [
  ['version', 'u16'],
  ['cnt', 'u16'],
  ['file', 'u32'],
  ['aux', 'u32'],
  ['next', 'u32'],
] as const;
const VERNAUX = [
  ['hash', 'u32'],
  ['flags', 'u16'],
  ['other', 'u16'],
  ['name', 'u32'],
  ['next', 'u32'],
] as const;
// Hash table headers: DT_HASH's counts are 4 bytes (8 on 64-bit s390); DT_GNU_HASH's header is
// followed by `bloomSize` words, `nbuckets` 4-byte buckets, then 4-byte chain entries.
const HASH = [
  ['nbucket', 'u32'],
  ['nchain', 'u32'],
] as const;
const HASH_WIDE = [
  ['nbucket', 'u64'],
  ['nchain', 'u64'],
] as const;
const GNU_HASH = [
  ['nbuckets', 'u32'],
  ['symoffset', 'u32'],
  ['bloomSize', 'u32'],
  ['bloomShift', 'u32'],
] as const;
export const GNU_HASH_ENTRY = 4;

type Names<S> = S extends ReadonlyArray<readonly [infer K, FieldType]> ? K & string : never;

/** e_ident is 16 bytes in both classes; the header's other fields follow it. */
export const IDENT_SIZE = 16;
export const EI = { CLASS: 4, DATA: 5, VERSION: 6 } as const;
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;
export const EV_CURRENT = 1;

/** Every structure, by name: its description (for errors) and its fields in ELF32 and in ELF64. */
const TABLES = {
  ehdr: ['ELF header', EHDR, EHDR],
  phdr: ['program header', PHDR32, PHDR64],
  shdr: ['section header', SHDR, SHDR],
  dyn: ['dynamic entry', DYN, DYN],
  sym: ['symbol', SYM32, SYM64],
  verdef: ['version definition', VERDEF, VERDEF],
  verdaux: ['version definition name', VERDAUX, VERDAUX],
  verneed: ['version requirement', VERNEED, VERNEED],
  vernaux: ['version requirement name', VERNAUX, VERNAUX],
  hash: ['hash table header', HASH, HASH],
  hashWide: ['hash table header', HASH_WIDE, HASH_WIDE],
  gnuHash: ['GNU hash table header', GNU_HASH, GNU_HASH],
} as const;

type Structs = { [K in keyof typeof TABLES]: Struct<Names<(typeof TABLES)[K][2]>> };

/** The structures of one class and byte order. The header's field offsets count from the end of e_ident. */
export interface ClassLayout extends Structs {
  is64: boolean;
  le: boolean;
  /** Bytes in an address, offset or size. */
  wordSize: number;
  ehdrSize: number;
  io(buf: Uint8Array): Io;
}

function makeLayout(is64: boolean, le: boolean, word8 = { get: GET[8], put: PUT[8] }): ClassLayout {
  const structs = Object.fromEntries(
    Object.entries(TABLES).map(([key, [what, spec32, spec64]]) => [key, new Struct(what, is64, is64 ? spec64 : spec32, word8)]),
  ) as unknown as Structs;
  return { ...structs, is64, le, wordSize: is64 ? 8 : 4, ehdrSize: IDENT_SIZE + structs.ehdr.size, io: (buf) => new Io(buf, is64, le, word8.put) };
}

const LAYOUTS = [makeLayout(false, false), makeLayout(false, true), makeLayout(true, false), makeLayout(true, true)] as const;
/** ELF64 IA-64 files, big- and little-endian: their words in the region form (IA64_WORD). */
const IA64_LAYOUTS = [makeLayout(true, false, IA64_WORD), makeLayout(true, true, IA64_WORD)] as const;

/** The smallest ELF header (ELF32's): shorter input is no ELF file of either class. */
export const MIN_EHDR_SIZE = LAYOUTS[0].ehdrSize;
/** The largest (ELF64's): reading this much first covers the header of either class. */
export const MAX_EHDR_SIZE = LAYOUTS[3].ehdrSize;

export function classLayout(is64: boolean, le: boolean): ClassLayout {
  return LAYOUTS[(is64 ? 2 : 0) + (le ? 1 : 0)]!;
}

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];

export function isElf(buf: Uint8Array): boolean {
  return buf.length >= 4 && ELF_MAGIC.every((b, i) => buf[i] === b);
}

/** Class and byte order from e_ident (and the machine, for IA-64's words), or undefined when they are not ELF's two values each. */
export function identLayout(buf: Uint8Array): ClassLayout | undefined {
  const cls = buf[EI.CLASS];
  const data = buf[EI.DATA];
  if ((cls !== ELFCLASS32 && cls !== ELFCLASS64) || (data !== ELFDATA2LSB && data !== ELFDATA2MSB)) return undefined;
  const le = data === ELFDATA2LSB;
  const machineAt = IDENT_SIZE + 2;
  if (cls === ELFCLASS64 && buf.length >= machineAt + 2) {
    const machine = le ? buf[machineAt]! | (buf[machineAt + 1]! << 8) : (buf[machineAt]! << 8) | buf[machineAt + 1]!;
    if (machine === EM.IA64) return IA64_LAYOUTS[le ? 1 : 0];
  }
  return classLayout(cls === ELFCLASS64, le);
}

export type Ehdr = Record<Names<typeof EHDR>, number>;

/** The header fields after e_ident; the caller has checked the buffer holds the whole header. */
export function readEhdr(l: ClassLayout, io: Io): Ehdr {
  return l.ehdr.read(io, IDENT_SIZE);
}

/** Offset in the file of a header field, for writes of single fields. */
export function ehdrField(l: ClassLayout, field: Names<typeof EHDR>): number {
  return IDENT_SIZE + l.ehdr.at(field);
}

/** The byte range of the header from the start of field `from` to the end of field `to`. */
export function ehdrSpan(l: ClassLayout, from: Names<typeof EHDR>, to: Names<typeof EHDR>): [number, number] {
  return [l.ehdr.span(IDENT_SIZE, from)[0], l.ehdr.span(IDENT_SIZE, to)[1]];
}

/** Write one header field. */
export function setEhdr(l: ClassLayout, io: Io, field: Names<typeof EHDR>, v: number): void {
  l.ehdr.set(io, IDENT_SIZE, field, v);
}
