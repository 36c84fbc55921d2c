// Where a new search path string goes in the dynamic string table. In place when it fits and no
// other reference reaches the old string's bytes; otherwise appended to a copy of the table, which
// then moves to the new segment. A string this engine appended before is reused in place.
import { ElfError } from '../error.ts';
import { type DynEntry, dynString, dynStringEnd, isStringTag, type ParsedElf } from '../reader.ts';
import { symbolStringRefs } from '../strrefs.ts';
import type { RpathDraft } from './dynamic.ts';

export interface StrDraft {
  /** The working copy of the table, when the edit touches it. */
  str?: Buffer;
  /** Bytes of `str` in use. */
  len: number;
  /** The table grew: it is written to the new segment. */
  moves: boolean;
}

/**
 * Every offset into the table that something other than `skip` names: the dynamic entries that
 * stay, then the symbol and version names (null when those cannot be told: then nothing is free).
 */
function references(e: ParsedElf, dyn: DynEntry[], skip: DynEntry): number[] | null {
  const symbols = symbolStringRefs(e);
  if (!symbols) return null;
  return [...dyn.filter((d) => d !== skip && isStringTag(d.tag)).map((d) => d.val), ...symbols];
}

/** Does any reference start inside [from, to] or name a string that runs into it (a merged tail)? */
function touches(e: ParsedElf, refs: number[] | null, from: number, to: number): boolean {
  if (!refs) return true;
  for (const r of refs) {
    if (r > to || r >= e.strSize) continue;
    if (r >= from || dynStringEnd(e, r) - e.strOff >= from) return true;
  }
  return false;
}

function onlyZeros(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/** Decide where `draft.value` goes; sets `draft.entry.val`. `tableInOwn`: the table lives in a segment relonix added. */
export function placeSearchPath(e: ParsedElf, draft: RpathDraft, tableInOwn: boolean): StrDraft {
  const out: StrDraft = { len: e.strSize, moves: false };
  const { entry, value, oldLen, dyn } = draft;
  if (!entry || !value) return out;
  if (e.strSize === 0) throw new ElfError(e.name, 'has no dynamic string table (DT_STRTAB)');
  const want = value.toString('utf8', 0, value.length - 1);
  // Only the tag kind changes.
  if (oldLen >= 0 && dynString(e, entry.val) === want) return out;
  if (want === '' && e.buf[e.strOff] === 0) {
    entry.val = 0;
    return out;
  }
  const s = Buffer.from(e.buf.subarray(e.strOff, e.strOff + e.strSize));
  out.str = s;
  let refs: number[] | null | undefined;
  const refsOnce = (): number[] | null => {
    if (refs === undefined) refs = references(e, dyn, entry);
    return refs;
  };
  const terminated = oldLen >= 0 && dynStringEnd(e, entry.val) < e.strOff + e.strSize;
  if (terminated && value.length <= oldLen + 1 && !touches(e, refsOnce(), entry.val, entry.val + oldLen)) {
    value.copy(s, entry.val);
    s.fill(0, entry.val + value.length, entry.val + oldLen + 1);
    return out;
  }
  let len = e.strSize;
  // A string this engine appended before sits at the end of a table it moved: reuse its room.
  if (terminated && tableInOwn && onlyZeros(s, entry.val + oldLen, len) && !touches(e, refsOnce(), entry.val, len)) len = entry.val;
  // A table whose last string runs up to its end unterminated gets the NUL it lacks first.
  const sep = len > 0 && s[len - 1] !== 0 ? 1 : 0;
  const grown = Buffer.alloc(len + sep + value.length);
  s.copy(grown, 0, 0, len);
  value.copy(grown, len + sep);
  entry.val = len + sep;
  return { str: grown, len: grown.length, moves: true };
}
