// Byte surgery on x86-64 ELF files that gcc built, to make the odd files other toolchains produce.
// Deliberately independent of src/elf/: the tests must not build their inputs with the code they test.
import { readFileSync, writeFileSync } from 'node:fs';

const PH = { type: [0, 4], flags: [4, 4], offset: [8, 8], vaddr: [16, 8], filesz: [32, 8], memsz: [40, 8] } as const;
const SH = { name: [0, 4], type: [4, 4], flags: [8, 8], addr: [16, 8], offset: [24, 8], size: [32, 8], addralign: [48, 8] } as const;
type PhField = keyof typeof PH;
type ShField = keyof typeof SH;

export class Elf64 {
  readonly buf: Buffer;
  constructor(file: string) {
    this.buf = Buffer.from(readFileSync(file));
    if (this.buf.readUInt32BE(0) !== 0x7f454c46 || this.buf[4] !== 2 || this.buf[5] !== 1) throw new Error(`${file} is not a little-endian ELF64 file`);
  }
  private get(at: number, width: number): number {
    return width === 4 ? this.buf.readUInt32LE(at) : Number(this.buf.readBigUInt64LE(at));
  }
  private put(at: number, width: number, v: number): void {
    if (width === 4) this.buf.writeUInt32LE(v, at);
    else this.buf.writeBigUInt64LE(BigInt(v), at);
  }
  /** File offset of field `f` of entry `i` of the table whose offset is at `tableAt` (entries `size` bytes). */
  private at(tableAt: number, size: number, i: number, f: readonly [number, number]): number {
    return this.get(tableAt, 8) + i * size + f[0];
  }
  phdr(i: number, f: PhField): number {
    return this.get(this.at(32, 56, i, PH[f]), PH[f][1]);
  }
  setPhdr(i: number, f: PhField, v: number): void {
    this.put(this.at(32, 56, i, PH[f]), PH[f][1], v);
  }
  get phnum(): number {
    return this.buf.readUInt16LE(56);
  }
  /** Index of the first segment of `type`. */
  segment(type: number): number {
    for (let i = 0; i < this.phnum; i++) if (this.phdr(i, 'type') === type) return i;
    throw new Error(`no segment of type ${type}`);
  }
  shdr(i: number, f: ShField): number {
    return this.get(this.at(40, 64, i, SH[f]), SH[f][1]);
  }
  setShdr(i: number, f: ShField, v: number): void {
    this.put(this.at(40, 64, i, SH[f]), SH[f][1], v);
  }
  get shnum(): number {
    return this.buf.readUInt16LE(60);
  }
  /** File offset of a section's name in the section name table. */
  nameAt(i: number): number {
    return this.shdr(this.buf.readUInt16LE(62), 'offset') + this.shdr(i, 'name');
  }
  sectionName(i: number): string {
    const at = this.nameAt(i);
    return this.buf.toString('latin1', at, this.buf.indexOf(0, at));
  }
  section(name: string): number {
    for (let i = 1; i < this.shnum; i++) if (this.sectionName(i) === name) return i;
    throw new Error(`no section ${name}`);
  }
  /** File offset of the value of the first dynamic entry with `tag`. */
  dynValueAt(tag: number): number {
    const d = this.segment(2);
    for (let at = this.phdr(d, 'offset'); at < this.phdr(d, 'offset') + this.phdr(d, 'filesz'); at += 16) {
      if (this.get(at, 8) === tag) return at + 8;
    }
    throw new Error(`no dynamic entry ${tag}`);
  }
  dyn(tag: number): number {
    return this.get(this.dynValueAt(tag), 8);
  }
  setDyn(tag: number, v: number): void {
    this.put(this.dynValueAt(tag), 8, v);
  }
  write(file: string): void {
    writeFileSync(file, this.buf, { mode: 0o755 });
  }
}
