// Builds small but complete dynamically linked ELF files for machines this host has no toolchain
// for (big-endian ppc64, 32-bit ppc): a read-only segment with the headers, the interpreter name,
// .dynsym and .dynstr, then a writable one with .dynamic and a .bss of any size, laid out as ld
// lays them out for the given page size (the second segment's address one page above its offset).
// Independent of src/elf/ on purpose: a test's input must not come from the code under test.

export interface BuildSpec {
  is64: boolean;
  le: boolean;
  machine: number;
  /** 2: ET_EXEC at 0x10000000, 3: ET_DYN (a PIE when it has an interpreter) at 0. */
  type: 2 | 3;
  page: number;
  interp?: string;
  needed: string[];
  symbols: string[];
  bss: number;
}

/** Field widths in order: 2 and 4 are fixed, 0 is a word (4 or 8 bytes by class). */
const EHDR = [2, 2, 4, 0, 0, 0, 4, 2, 2, 2, 2, 2, 2];
const PHDR64 = [4, 4, 0, 0, 0, 0, 0, 0];
const PHDR32 = [4, 0, 0, 0, 0, 0, 4, 0];
const SHDR = [4, 4, 0, 0, 0, 0, 4, 4, 0, 0];
const SYM64 = [4, 1, 1, 2, 0, 0];
const SYM32 = [4, 0, 0, 1, 1, 2];

class Writer {
  readonly buf: Buffer;
  constructor(
    size: number,
    private readonly is64: boolean,
    private readonly le: boolean,
  ) {
    this.buf = Buffer.alloc(size);
  }
  /** Write `values` at `at` with the widths of `shape`; returns the offset after them. */
  put(at: number, shape: number[], values: number[]): number {
    shape.forEach((w, i) => {
      const width = w === 0 ? (this.is64 ? 8 : 4) : w;
      const v = values[i] ?? 0;
      if (width === 1) this.buf.writeUInt8(v, at);
      else if (width === 2) this.le ? this.buf.writeUInt16LE(v, at) : this.buf.writeUInt16BE(v, at);
      else if (width === 4) this.le ? this.buf.writeUInt32LE(v, at) : this.buf.writeUInt32BE(v, at);
      else this.le ? this.buf.writeBigUInt64LE(BigInt(v), at) : this.buf.writeBigUInt64BE(BigInt(v), at);
      at += width;
    });
    return at;
  }
}

const align = (v: number, a: number): number => Math.ceil(v / a) * a;

export function buildElf(s: BuildSpec): Buffer {
  const word = s.is64 ? 8 : 4;
  const ehsize = s.is64 ? 64 : 52;
  const phent = s.is64 ? 56 : 32;
  const shent = s.is64 ? 64 : 40;
  const syment = s.is64 ? 24 : 16;
  const base = s.type === 2 ? 0x10000000 : 0;
  const phnum = s.interp ? 5 : 4;
  // .dynstr: "", needed..., symbol names...
  const strings = ['', ...s.needed, ...s.symbols];
  const strOff = new Map<string, number>();
  let dynstr = Buffer.alloc(0);
  for (const x of strings) {
    strOff.set(x, dynstr.length);
    dynstr = Buffer.concat([dynstr, Buffer.from(`${x}\0`)]);
  }
  const interp = s.interp ? Buffer.from(`${s.interp}\0`) : Buffer.alloc(0);
  const oInterp = ehsize + phnum * phent;
  const oDynsym = align(oInterp + interp.length, word);
  const nsyms = s.symbols.length + 1;
  const oDynstr = oDynsym + nsyms * syment;
  const textEnd = oDynstr + dynstr.length;
  // The writable segment follows at once in the file and one page up in memory.
  const oDynamic = align(textEnd, word);
  const dyn: Array<[number, number]> = [
    ...s.needed.map((n): [number, number] => [1, strOff.get(n)!]),
    [5, base + oDynstr],
    [10, dynstr.length],
    [6, base + oDynsym],
    [11, syment],
    [0, 0],
  ];
  const dynSize = dyn.length * 2 * word;
  const dataEnd = oDynamic + dynSize;
  const shstr = Buffer.from('\0.interp\0.dynsym\0.dynstr\0.dynamic\0.bss\0.shstrtab\0');
  const name = (n: string): number => shstr.indexOf(`\0${n}\0`) + 1;
  const oShstr = dataEnd;
  const shoff = align(oShstr + shstr.length, word);
  const shnum = 7;
  const w = new Writer(shoff + shnum * shent, s.is64, s.le);
  w.buf.set([0x7f, 0x45, 0x4c, 0x46, s.is64 ? 2 : 1, s.le ? 1 : 2, 1]);
  w.put(16, EHDR, [s.type, s.machine, 1, base + oDynsym, ehsize, shoff, 0, ehsize, phent, phnum, shent, shnum, shnum - 1]);
  const data = { offset: oDynamic, vaddr: base + oDynamic + s.page };
  const ph = (i: number, type: number, flags: number, offset: number, vaddr: number, filesz: number, memsz: number, a: number): void => {
    const at = ehsize + i * phent;
    if (s.is64) w.put(at, PHDR64, [type, flags, offset, vaddr, vaddr, filesz, memsz, a]);
    else w.put(at, PHDR32, [type, offset, vaddr, vaddr, filesz, memsz, flags, a]);
  };
  let i = 0;
  ph(i++, 6, 4, ehsize, base + ehsize, phnum * phent, phnum * phent, word);
  if (s.interp) ph(i++, 3, 4, oInterp, base + oInterp, interp.length, interp.length, 1);
  ph(i++, 1, 5, 0, base, textEnd, textEnd, s.page);
  ph(i++, 1, 6, data.offset, data.vaddr, dataEnd - oDynamic, dataEnd - oDynamic + s.bss, s.page);
  ph(i++, 2, 6, data.offset, data.vaddr, dynSize, dynSize, word);
  interp.copy(w.buf, oInterp);
  s.symbols.forEach((sym, k) => {
    const at = oDynsym + (k + 1) * syment;
    // Global 8-byte objects in .bss (section 5).
    const value = data.vaddr + dynSize + k * 8;
    if (s.is64) w.put(at, SYM64, [strOff.get(sym)!, 0x11, 0, 5, value, 8]);
    else w.put(at, SYM32, [strOff.get(sym)!, value, 8, 0x11, 0, 5]);
  });
  dynstr.copy(w.buf, oDynstr);
  for (const [k, [t, v]] of dyn.entries()) w.put(oDynamic + k * 2 * word, [0, 0], [t, v]);
  shstr.copy(w.buf, oShstr);
  const sh = (k: number, values: number[]): void => {
    w.put(shoff + k * shent, SHDR, values);
  };
  if (s.interp) sh(1, [name('.interp'), 1, 2, base + oInterp, oInterp, interp.length, 0, 0, 1, 0]);
  else sh(1, [name('.interp'), 1, 2, base + oInterp, oInterp, 0, 0, 0, 1, 0]);
  sh(2, [name('.dynsym'), 11, 2, base + oDynsym, oDynsym, nsyms * syment, 3, 1, word, syment]);
  sh(3, [name('.dynstr'), 3, 2, base + oDynstr, oDynstr, dynstr.length, 0, 0, 1, 0]);
  sh(4, [name('.dynamic'), 6, 3, data.vaddr, oDynamic, dynSize, 3, 0, word, 2 * word]);
  sh(5, [name('.bss'), 8, 3, data.vaddr + dynSize, dataEnd, s.bss, 0, 0, word, 0]);
  sh(6, [name('.shstrtab'), 3, 0, 0, oShstr, shstr.length, 0, 0, 1, 0]);
  return w.buf;
}
