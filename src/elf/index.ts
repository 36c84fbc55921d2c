// src/elf/: the ELF engine (no native code, no patchelf): layout tables, reader, planner (plan/),
// writer and file driver. This module is its public face: read, edit and relocate interpreters and
// search paths.
import { promises as fs } from 'node:fs';
import { DT } from './consts.ts';
import { ElfError } from './error.ts';
import { writeOutputSync, writePlan, writePlanSync } from './file.ts';
import { isElf } from './layout.ts';
import { planLayout } from './plan/planner.ts';
import type { EditPlan, ElfEdits } from './plan/types.ts';
import { dynString, type ElfInfo, isDynamicLinker, type ParsedElf, parseElf, summarize } from './reader.ts';
import { editParsed, emit, planEdit } from './writer.ts';

export { defaultPageSize } from './consts.ts';
export { interpreterOf } from './peek.ts';
export type { EditPlan, ElfEdits, ElfInfo, ParsedElf };
export { ElfError, editParsed, isElf, parseElf, planEdit, summarize, writeOutputSync, writePlanSync };

export function readElf(buf: Buffer, name?: string): ElfInfo {
  return summarize(parseElf(buf, name));
}

/** The edited file, or null when the edit changes nothing (then not a byte differs). */
export function editElf(buf: Buffer, edits: ElfEdits, name?: string): Buffer | null {
  return guard(name, () => editParsed(parseElf(buf, name), edits));
}

/**
 * Apply `map` to the interpreter and to RPATH/RUNPATH (keeping the tag kind). Returns null for
 * files that are not ELF, have nothing to relocate, or are a dynamic linker: the loader finds
 * its own libraries by its compiled-in paths and must keep its own headers.
 */
export function relocateElf(buf: Buffer, map: (s: string) => string, name?: string, pageSize?: number): Buffer | null {
  if (!isElf(buf)) return null;
  return guard(name, () => {
    const e = parseElf(buf, name);
    const edits = relocationEdits(e, map, pageSize);
    return edits && editParsed(e, edits);
  });
}

/** An ELF file edited where it lay: the buffer given, changed below its end, then `bytes` at `at` (zeros between). */
export interface EditedInPlace {
  inPlace: true;
  appended?: { at: number; bytes: Buffer };
}

/**
 * relocateElf on a buffer the caller gives away: edited where it lies when the new layout keeps
 * every byte below its old end where it was (the segment the edit adds comes apart, to follow the
 * file), which saves copying the whole file; else a new buffer, as relocateElf gives. The buffer
 * changes only once the edit is planned: a file the engine refuses is left as it was.
 */
export function relocateElfInPlace(buf: Buffer, map: (s: string) => string, name?: string): Buffer | EditedInPlace | null {
  if (!isElf(buf)) return null;
  const planned = guard(name, () => {
    const e = parseElf(buf, name);
    const edits = relocationEdits(e, map, undefined);
    const layout = edits && planLayout(e, edits);
    return layout && { e, layout };
  });
  if (!planned) return null;
  // past planning nothing is refused: a failure here is a fault, never a half-edited file taken for data
  const plan = emit(planned.e, planned.layout, true);
  if (plan.pre !== buf) return plan.pre.length === plan.base ? plan.pre : plan.pre.subarray(0, plan.base);
  return plan.seg ? { inPlace: true, appended: { at: plan.off0, bytes: plan.seg } } : { inPlace: true };
}

/**
 * relocateElf for the store's relocator (store/ knows nothing of the engine): a file the engine
 * cannot edit comes back as `{ refused }`, which the relocator records and treats as binary data.
 */
export function storeRelocator(buf: Buffer, map: (s: string) => string, name?: string): Buffer | null | { refused: string } {
  return refusedAsData(() => relocateElf(buf, map, name));
}

/** storeRelocator for buffers the relocator gives away: relocateElfInPlace. */
export function ownStoreRelocator(buf: Buffer, map: (s: string) => string, name?: string): Buffer | EditedInPlace | null | { refused: string } {
  return refusedAsData(() => relocateElfInPlace(buf, map, name));
}

function refusedAsData<T>(f: () => T): T | { refused: string } {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof ElfError)) throw err;
    return { refused: err.message };
  }
}

function relocationEdits(e: ParsedElf, map: (s: string) => string, pageSize: number | undefined): ElfEdits | null {
  let soname: string | undefined;
  let rp: { tag: number; val: number } | undefined;
  for (const d of e.dyn) {
    if (d.tag === DT.SONAME) soname = dynString(e, d.val);
    else if (d.tag === DT.RUNPATH || (d.tag === DT.RPATH && !rp)) rp = d;
  }
  if (isDynamicLinker(e, soname)) return null;
  const edits: ElfEdits = {};
  if (e.interp !== undefined) {
    const next = map(e.interp);
    if (next !== e.interp) edits.interpreter = next;
  }
  if (rp) {
    const old = dynString(e, rp.val);
    const next = map(old);
    if (next !== old) {
      edits.rpath = next;
      edits.forceRpath = rp.tag === DT.RPATH;
    }
  }
  if (edits.interpreter === undefined && edits.rpath === undefined) return null;
  if (pageSize !== undefined) edits.pageSize = pageSize;
  return edits;
}

/** Only ElfError leaves the engine: anything else thrown on hostile input is a bug reported as one. */
function guard<T>(name: string | undefined, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof ElfError) throw err;
    throw new ElfError(name ?? '<buffer>', `malformed ELF file (${(err as Error).message})`);
  }
}

/**
 * Edit a file on disk. The new layout is decided fully in memory first, then written by the one
 * file writer (file.ts): only the changed bytes, in an order that keeps the file valid at every
 * step, or the whole file through a temporary sibling and a rename; mode, owner and hard links are
 * kept. Returns whether the file changed. On any error the file is untouched.
 */
export async function patchFile(file: string, edits: ElfEdits): Promise<boolean> {
  const buf = await fs.readFile(file);
  const plan = guard(file, () => planEdit(parseElf(buf, file), edits, true));
  if (!plan) return false;
  await writePlan(file, plan, buf);
  return true;
}

/**
 * relocateElf on a file, written like patchFile. Returns whether it changed; non-ELF files and
 * dynamic linkers are left alone (false). For a whole closure, call it file by file: each file is
 * read and parsed once.
 */
export async function relocateFile(file: string, map: (s: string) => string, pageSize?: number): Promise<boolean> {
  const buf = await fs.readFile(file);
  if (!isElf(buf)) return false;
  const plan = guard(file, () => {
    const e = parseElf(buf, file);
    const edits = relocationEdits(e, map, pageSize);
    return edits && planEdit(e, edits, true);
  });
  if (!plan) return false;
  await writePlan(file, plan, buf);
  return true;
}
