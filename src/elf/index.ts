// The ELF engine's public face: read, edit and relocate interpreters and search paths.
import { promises as fs, constants as C, statSync, chmodSync, openSync, writeSync, ftruncateSync, closeSync, fchownSync, fchmodSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DT_RPATH, DT_RUNPATH } from './consts.ts';
import { ElfError, type ElfInfo, isElf, isDynamicLinker, parseElf, summarize, dynString, type ParsedElf } from './reader.ts';
import { editParsed, planEdit, type EditPlan, type ElfEdits } from './writer.ts';

export { ElfError, isElf, parseElf, summarize, editParsed, planEdit };
export type { ElfInfo, ElfEdits, ParsedElf, EditPlan };
export { defaultPageSize } from './consts.ts';

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
    const edits = relocationEdits(e, map);
    if (!edits) return null;
    if (pageSize !== undefined) edits.pageSize = pageSize;
    return editParsed(e, edits);
  });
}

function relocationEdits(e: ParsedElf, map: (s: string) => string): ElfEdits | null {
  let soname: string | undefined;
  let rp: { tag: number; val: number } | undefined;
  for (const d of e.dyn) {
    if (d.tag === 14) soname = dynString(e, d.val);
    else if (d.tag === DT_RUNPATH || (d.tag === DT_RPATH && !rp)) rp = d;
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
      edits.forceRpath = rp.tag === DT_RPATH;
    }
  }
  return edits.interpreter === undefined && edits.rpath === undefined ? null : edits;
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
 * Edit a file on disk. The new content is computed fully in memory first. A file with one link is
 * replaced through a temporary sibling and rename, so a crash leaves the old or the new file, never
 * half of one; mode (read-only included) and, where permitted, owner are kept. A file with several
 * hard links is rewritten in place instead, because a rename would split it from its other names
 * (Nix store optimisation hard-links identical files); the window for a torn write is then one
 * write call. Returns whether the file changed. On any error the file is untouched.
 */
export async function patchFile(file: string, edits: ElfEdits): Promise<boolean> {
  const buf = await fs.readFile(file);
  const out = editElf(buf, edits, file);
  if (!out) return false;
  await writeBack(file, out);
  return true;
}

/**
 * relocateElf on a file, written like patchFile. Returns whether it changed; non-ELF files and
 * dynamic linkers are left alone (false). For a whole closure, call it file by file: each file is
 * read and parsed once.
 */
export async function relocateFile(file: string, map: (s: string) => string, pageSize?: number): Promise<boolean> {
  const buf = await fs.readFile(file);
  const out = relocateElf(buf, map, file, pageSize);
  if (!out) return false;
  await writeBack(file, out);
  return true;
}

/** Like patchFile, for callers that already hold the edited bytes (e.g. relocateElf). */
export async function writeBack(file: string, data: Buffer): Promise<void> {
  const st = await fs.stat(file);
  const mode = st.mode & 0o7777;
  if (st.nlink > 1) {
    const writable = (mode & 0o200) !== 0;
    if (!writable) await fs.chmod(file, mode | 0o200);
    try {
      const fh = await fs.open(file, C.O_WRONLY);
      try {
        await fh.write(data, 0, data.length, 0);
        await fh.truncate(data.length);
      } finally {
        await fh.close();
      }
    } finally {
      if (!writable) await fs.chmod(file, mode);
    }
    return;
  }
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(4).toString('hex')}.relonix`);
  const attempt = async (): Promise<void> => {
    const fh = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    try {
      await fh.writeFile(data);
      await fh.chown(st.uid, st.gid).catch(() => {});
      await fh.chmod(mode);
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
  };
  try {
    await attempt();
  } catch (err) {
    await fs.rm(tmp, { force: true });
    // Store directories are read-only; open them for the rename and close them again.
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    const dst = await fs.stat(dir);
    await fs.chmod(dir, (dst.mode & 0o7777) | 0o200);
    try {
      await attempt();
    } catch (e2) {
      await fs.rm(tmp, { force: true });
      throw e2;
    } finally {
      await fs.chmod(dir, dst.mode & 0o7777);
    }
  }
}

/** writeBack for the synchronous bulk path (relonix patchelf over many files): same rules. */
export function writeBackSync(file: string, data: Buffer): void {
  const st = statSync(file);
  const mode = st.mode & 0o7777;
  if (st.nlink > 1) {
    const writable = (mode & 0o200) !== 0;
    if (!writable) chmodSync(file, mode | 0o200);
    try {
      const fd = openSync(file, C.O_WRONLY);
      try {
        writeSync(fd, data, 0, data.length, 0);
        ftruncateSync(fd, data.length);
      } finally {
        closeSync(fd);
      }
    } finally {
      if (!writable) chmodSync(file, mode);
    }
    return;
  }
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(4).toString('hex')}.relonix`);
  const attempt = (): void => {
    const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    try {
      writeSync(fd, data, 0, data.length, 0);
      try {
        fchownSync(fd, st.uid, st.gid);
      } catch {
        // not permitted for other owners: keep ours
      }
      fchmodSync(fd, mode);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  };
  try {
    attempt();
  } catch (err) {
    rmSync(tmp, { force: true });
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    const dmode = statSync(dir).mode & 0o7777;
    chmodSync(dir, dmode | 0o200);
    try {
      attempt();
    } catch (e2) {
      rmSync(tmp, { force: true });
      throw e2;
    } finally {
      chmodSync(dir, dmode);
    }
  }
}

/**
 * Write a plan made with planEdit(…, mutate = true) over the file it was read from (`orig`, now
 * holding the edited prefix), touching only what changed, in an order where the file is a valid
 * ELF after every step: first the appended segment (beyond the old end, where nothing points yet),
 * then the ELF header that switches to the new program header table, then the dynamic table,
 * strings and section headers edited in place, each as one write. A crash or a full disk in
 * between leaves a working file with the old or the new values, never a torn one; a failed append
 * is cut off again. This keeps hard links and makes bulk `relonix patchelf` cheap: writing every
 * byte to a temporary file costs a full block allocation on ext4. A plan that rebuilds a segment
 * relonix added before (live bytes would be overwritten) goes through writeBackSync instead.
 */
export function writePlanSync(file: string, plan: EditPlan, orig: Buffer): void {
  if (plan.pre !== orig) {
    writeBackSync(file, plan.pre.subarray(0, plan.base));
    return;
  }
  const st = statSync(file);
  const mode = st.mode & 0o7777;
  const writable = (mode & 0o200) !== 0;
  if (!writable) chmodSync(file, mode | 0o200);
  try {
    const fd = openSync(file, C.O_WRONLY);
    try {
      if (plan.seg) {
        try {
          writeSync(fd, plan.seg, 0, plan.seg.length, plan.off0);
        } catch (err) {
          ftruncateSync(fd, orig.length);
          throw err;
        }
      }
      const ranges = [...plan.dirty];
      const hdr = ranges.findIndex(([a]) => a < 64);
      if (hdr > 0) ranges.unshift(...ranges.splice(hdr, 1));
      for (const [a, b] of ranges) writeSync(fd, orig, a, b - a, a);
    } finally {
      closeSync(fd);
    }
  } finally {
    if (!writable) chmodSync(file, mode);
  }
}
