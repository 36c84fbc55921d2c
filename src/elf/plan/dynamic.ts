// The dynamic table an edit asks for: which DT_RPATH/DT_RUNPATH entries stay, go or change kind,
// and which entry is to name the new search path. Where its string goes is plan/strings.ts's job.
import { DT } from '../consts.ts';
import { ElfError } from '../error.ts';
import { type DynEntry, dynString, type ParsedElf } from '../reader.ts';
import type { ElfEdits } from './types.ts';

export interface RpathDraft {
  /** The entries the dynamic table will hold (before DT_NULL). */
  dyn: DynEntry[];
  changed: boolean;
  /** The entry to point at `value` (one of `dyn`), when a search path is set. */
  entry?: DynEntry;
  /** The search path as stored: its bytes and a NUL. */
  value?: Buffer;
  /** Byte length of the string `entry` named before, or -1 for a new entry. */
  oldLen: number;
}

export function cstrBytes(e: ParsedElf, s: string, what: string): Buffer {
  if (s.includes('\0')) throw new ElfError(e.name, `the new ${what} contains a NUL byte`);
  return Buffer.from(`${s}\0`, 'utf8');
}

const isSearchPath = (d: DynEntry): boolean => d.tag === DT.RPATH || d.tag === DT.RUNPATH;

export function rpathDraft(e: ParsedElf, edits: ElfEdits): RpathDraft {
  const unchanged: RpathDraft = { dyn: e.dyn, changed: false, oldLen: -1 };
  if (edits.rpath === undefined) return unchanged;
  const found = e.dyn.flatMap((d, i) => (isSearchPath(d) ? [i] : []));
  if (edits.rpath === null) {
    return found.length ? { dyn: e.dyn.filter((d) => !isSearchPath(d)), changed: true, oldLen: -1 } : unchanged;
  }
  const wantTag = edits.forceRpath ? DT.RPATH : DT.RUNPATH;
  const value = cstrBytes(e, edits.rpath, 'rpath');
  const primary = found.find((i) => e.dyn[i]!.tag === DT.RUNPATH) ?? found[0];
  const same = primary !== undefined && found.length === 1 && e.dyn[primary]!.tag === wantTag && dynString(e, e.dyn[primary]!.val) === edits.rpath;
  if (same) return unchanged;
  let dyn = e.dyn.map((d) => ({ ...d }));
  let entry: DynEntry;
  let oldLen = -1;
  if (primary !== undefined) {
    entry = dyn[primary]!;
    oldLen = Buffer.byteLength(dynString(e, entry.val), 'utf8');
    // One search path remains: the others would override it or be overridden.
    dyn = dyn.filter((d, i) => i === primary || !isSearchPath(d));
  } else {
    entry = { tag: wantTag, val: 0 };
    // Conventionally after DT_NEEDED/DT_SONAME; the position has no meaning to the loader.
    let at = 0;
    for (let i = 0; i < dyn.length; i++) if (dyn[i]!.tag === DT.NEEDED || dyn[i]!.tag === DT.SONAME) at = i + 1;
    dyn.splice(at, 0, entry);
  }
  entry.tag = wantTag;
  return { dyn, changed: true, entry, value, oldLen };
}
