// Quick looks at a file's header through the layout tables, for callers that must not fail on odd
// files (verifying a bootstrap, patchelf's own header checks, --shrink-rpath probing libraries).
import { PT } from './consts.ts';
import { type ClassLayout, type Ehdr, ehdrField, type Io, identLayout, isElf, MIN_EHDR_SIZE, readEhdr } from './layout.ts';

export interface HeaderPeek {
  layout: ClassLayout;
  io: Io;
  header: Ehdr;
}

/** The class, byte order and header fields, or undefined when the buffer does not hold an ELF header. */
export function peekHeader(buf: Uint8Array): HeaderPeek | undefined {
  if (!isElf(buf)) return undefined;
  const layout = identLayout(buf);
  if (!layout || buf.length < layout.ehdrSize) return undefined;
  const io = layout.io(buf);
  return { layout, io, header: readEhdr(layout, io) };
}

/** e_machine, from as little as the first 20 bytes; undefined when they are not an ELF header's. */
export function peekMachine(buf: Uint8Array): number | undefined {
  const layout = isElf(buf) ? identLayout(buf) : undefined;
  const at = layout && ehdrField(layout, 'machine');
  if (!layout || at === undefined || buf.length < at + 2) return undefined;
  return layout.io(buf).u16(at);
}

/** The PT_INTERP string of an ELF file (64- or 32-bit, either byte order), or undefined. */
export function interpreterOf(buf: Buffer): string | undefined {
  const h = buf.length >= MIN_EHDR_SIZE ? peekHeader(buf) : undefined;
  if (!h) return undefined;
  const { layout: l, io, header } = h;
  for (let i = 0; i < header.phnum; i++) {
    const at = header.phoff + i * header.phentsize;
    if (at + l.phdr.size > buf.length) return undefined;
    const p = l.phdr.read(io, at);
    if (p.type !== PT.INTERP) continue;
    const s = buf.subarray(p.offset, p.offset + p.filesz);
    const nul = s.indexOf(0);
    return s.subarray(0, nul === -1 ? s.length : nul).toString();
  }
  return undefined;
}
