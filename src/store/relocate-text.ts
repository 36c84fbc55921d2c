// Pure byte-level rules for moving store paths from one store dir to another. No I/O here, so the
// idempotence rules can be tested on buffers alone.
import { indexOfBytes } from '../util/bytes.ts';

/**
 * Bytes that may appear inside a path. A `/nix/store` preceded by one of these is part of a longer
 * path — most importantly our own new store dir, since `/tmp/nix/store` contains `/nix/store`. Only
 * occurrences that start a path are rewritten, which makes a second pass a no-op.
 */
function isPathByte(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) || // 0-9
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    b === 0x2f || // /
    b === 0x2e || // .
    b === 0x2d || // -
    b === 0x5f || // _
    b === 0x2b // +
  );
}

/**
 * Offsets of every `from` that ends a path component (followed by `/` or a non-path byte) and
 * begins a path. `anyStart` drops the second rule, for a `to` that cannot contain `from` (one of
 * the same length): then `-L/nix/store/…` in a flag moves too.
 */
export function findStoreRefs(buf: Buffer, from: string, anyStart = false): number[] {
  const needle = Buffer.from(from);
  const out: number[] = [];
  let i = indexOfBytes(buf, needle);
  while (i !== -1) {
    const before = i === 0 ? -1 : buf[i - 1]!;
    const afterIdx = i + needle.length;
    const after = afterIdx < buf.length ? buf[afterIdx]! : -1;
    const starts = anyStart || before === -1 || !isPathByte(before);
    const ends = after === -1 || after === 0x2f || !isPathByte(after);
    if (starts && ends) out.push(i);
    i = indexOfBytes(buf, needle, i + needle.length);
  }
  return out;
}

/** Rewrites every reference found by findStoreRefs; null when there is nothing to change. */
export function rewriteRefs(buf: Buffer, from: string, to: string): { out: Buffer; count: number } | null {
  if (from === to) return null;
  const hits = findStoreRefs(buf, from, sameLength(from, to));
  if (hits.length === 0) return null;
  const toBuf = Buffer.from(to);
  const parts: Buffer[] = [];
  let last = 0;
  for (const h of hits) {
    parts.push(buf.subarray(last, h), toBuf);
    last = h + from.length;
  }
  parts.push(buf.subarray(last));
  return { out: Buffer.concat(parts), count: hits.length };
}

/** A symlink target under `from`, moved under `to`; null when it points elsewhere (or was moved already). */
export function rewriteLinkTarget(target: string, from: string, to: string): string | null {
  if (from === to) return null;
  if (target === from) return to;
  if (target.startsWith(`${from}/`)) return to + target.slice(from.length);
  return null;
}

/**
 * Store dirs of one length: every reference is replaced in place, in binary data as in text, and
 * no byte moves (what Nix's own hash rewriting relies on). `to` cannot contain `from` then.
 */
export function sameLength(from: string, to: string): boolean {
  return from !== to && Buffer.byteLength(from) === Buffer.byteLength(to);
}

export type FileKind = 'elf' | 'text' | 'binary';

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Text means no NUL byte anywhere: such files can grow, binaries cannot without breaking offsets. */
export function classify(buf: Buffer): FileKind {
  if (buf.length >= 16 && buf.subarray(0, 4).equals(ELF_MAGIC)) return 'elf';
  return buf.includes(0) ? 'binary' : 'text';
}

/** The readable string around an offset (up to a NUL, newline or 200 bytes), for the report. */
export function stringAt(buf: Buffer, offset: number, max = 200): string {
  let end = offset;
  while (end < buf.length && end - offset < max) {
    const b = buf[end]!;
    if (b === 0 || b === 0x0a || b < 0x20 || b > 0x7e) break;
    end++;
  }
  return buf.subarray(offset, end).toString('latin1');
}

/** What a file gains past its content, at `at` (zeros between): the segment an ELF edit made in place adds. */
export type Appended = { at: number; bytes: Buffer };

export interface FilePlan {
  kind: FileKind;
  /** new content, or undefined when the file stays as it is */
  content?: Buffer;
  /** only from an OwnElfRelocator: what the file continues with, at `at` past the content (zeros between) */
  appended?: Appended;
  /** text references rewritten (with store dirs of one length, those in binary data too) */
  rewritten: number;
  /** whether the ELF interpreter or RUNPATH changed */
  elfPatched: boolean;
  /** references left in binary data that cannot grow in place */
  unrewritable: { offset: number; string: string }[];
  /** why the ELF engine refused the file, when it did */
  elfError?: string;
}

/**
 * The ELF engine's relocator: applies `map` to the interpreter and to RPATH/RUNPATH; null when
 * nothing changes; `{ refused }` with the engine's reason for a file it cannot edit (the relocator
 * records it and treats the file as binary data). Anything it throws is a fault.
 */
export type ElfRelocator = (buf: Buffer, map: (s: string) => string, name?: string) => Buffer | null | { refused: string };

/**
 * An ElfRelocator for buffers given away to it: it may edit `buf` itself and say so (`inPlace`),
 * with the bytes the file gains after its end.
 */
export type OwnElfRelocator = (
  buf: Buffer,
  map: (s: string) => string,
  name?: string,
) => Buffer | { inPlace: true; appended?: Appended } | null | { refused: string };

/**
 * Decides what one regular file becomes. ELF: the interpreter and RUNPATH/RPATH move through the
 * ELF engine; anything else in it is binary data. Text: every reference is rewritten. Other binary
 * data: references are reported, since a longer path would shift everything after it.
 */
export function planFile(buf: Buffer, from: string, to: string, relocateElf: ElfRelocator | OwnElfRelocator, name?: string): FilePlan {
  const kind = classify(buf);
  const plan: FilePlan = { kind, rewritten: 0, elfPatched: false, unrewritable: [] };
  if (from === to) return plan;
  if (kind === 'text' || sameLength(from, to)) {
    const r = rewriteRefs(buf, from, to);
    if (r) {
      plan.content = r.out;
      plan.rewritten = r.count;
      // interpreter and RUNPATH are strings like any other here: no ELF surgery is needed
      plan.elfPatched = kind === 'elf';
    }
    return plan;
  }
  // interpreter and RUNPATH values the engine moved; their old copies may stay behind, unused, in .dynstr
  const oldStrings: string[] = [];
  if (kind === 'elf') {
    const map = (s: string) => {
      oldStrings.push(s);
      return rewriteRefs(Buffer.from(s), from, to)?.out.toString() ?? s;
    };
    const got = relocateElf(buf, map, name);
    // a file that only looks like ELF (or one the engine cannot edit) is binary data: reported below
    if (got && 'refused' in got) plan.elfError = got.refused;
    else if (got && 'inPlace' in got) {
      // the engine planned a change and made it in `buf`: there is no old content left to compare with
      plan.content = buf;
      plan.appended = got.appended;
      plan.elfPatched = true;
    } else if (got && !got.equals(buf)) {
      plan.content = got;
      plan.elfPatched = true;
    }
  }
  reportLeft(plan, plan.content ?? buf, 0, from, oldStrings);
  if (plan.appended) reportLeft(plan, plan.appended.bytes, plan.appended.at, from, oldStrings);
  return plan;
}

/** References to `from` in binary data (at `base` in the file), which stay: each string once, but the engine's old ones. */
function reportLeft(plan: FilePlan, bytes: Buffer, base: number, from: string, oldStrings: string[]): void {
  let end = -1;
  for (const offset of findStoreRefs(bytes, from)) {
    if (offset < end) continue; // the next path in a colon-separated list: one entry per string
    const whole = stringAt(bytes, offset, 4096);
    end = offset + whole.length;
    if (plan.elfPatched && oldStrings.some((o) => o.endsWith(whole))) continue;
    plan.unrewritable.push({ offset: base + offset, string: whole.slice(0, 200) });
  }
}
