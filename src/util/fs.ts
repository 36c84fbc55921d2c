// Files as relonix writes them: temporaries named so that a later run can clear what a killed one
// left, replacement by temporary + fsync + rename, whole writes, JSON read back, trees made writable,
// listed and removed, and the free space under a path.

import { randomBytes } from 'node:crypto';
import { constants as C, promises as fs, type Stats, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { processAlive } from './proc.ts';

// Every temporary relonix makes is named `.relonix-…`, beside what it will replace (the same
// filesystem, so the final rename is atomic), hidden from listings, and recognisable, so a later
// run can clear what a killed one left.
const TEMP_PREFIX = '.relonix-';
/** file names may be 255 bytes; the name in a temporary is only there for people reading `ls -a` */
const NAME_PART = 100;

/** A fresh temporary name beside `target` (or in `dir`): `.relonix-<name>.<pid>.<random>.tmp`. */
export function tempSibling(target: string, dir = path.dirname(target)): string {
  const name = path.basename(target).slice(0, NAME_PART);
  return path.join(dir, `${TEMP_PREFIX}${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** The names in a directory; none when it is missing or unreadable. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch {
    return [];
  }
}

/**
 * Removes the temporaries of `target` (tempSibling's, beside it: files or directories) that a
 * process no longer running left; one this user may not remove (another's, in /tmp) stays.
 */
export async function clearStaleTemps(target: string): Promise<void> {
  const dir = path.dirname(target);
  const head = `${TEMP_PREFIX}${path.basename(target).slice(0, NAME_PART)}.`;
  for (const n of await listDir(dir)) {
    const pid = n.startsWith(head) ? /^(\d+)\.[0-9a-f]+\.tmp$/.exec(n.slice(head.length))?.[1] : undefined;
    if (pid && !processAlive(Number(pid))) await removeTree(path.join(dir, n)).catch(() => undefined);
  }
}

/** Removes the temporaries in `dir` (not below it). The caller must own dir: hold its lock. */
export async function clearTemps(dir: string): Promise<void> {
  for (const n of await listDir(dir)) if (isTempName(n)) await removeTree(path.join(dir, n));
}

export interface ReplaceOptions {
  /**
   * The one fsync rule: a file is synced before it takes its name, so a name never points at
   * data a crash lost, except store content. A store object is trusted only through its NAR hash,
   * which is checked wherever it is read (restore, register, verify); syncing every file of a
   * closure would cost more than the whole relocation.
   */
  storeContent?: boolean;
  /**
   * Make the temporary here instead of beside the target (the same filesystem): for a tree that
   * must never hold one, with a directory of its own that the caller clears at start.
   */
  tempDir?: string;
}

/**
 * How relonix replaces a file or a tree (writeFileAtomic and copyFileAtomic go through it; the ELF
 * writer's synchronous steps in elf/file.ts do the same under a tempSibling name): `make` builds it
 * under tempSibling(target), which is then renamed over target. Readers, and a kill, see the old or
 * the new, never half of either; on failure the temporary goes.
 */
export async function replaceAtomic(target: string, make: (tmp: string) => Promise<void>, opts: ReplaceOptions = {}): Promise<void> {
  await replaceThrough(target, opts, async (tmp) => void (await make(tmp)));
}

/** replaceAtomic of a file that `make` may leave open: it is synced and closed through its handle, not opened again. */
async function replaceThrough(target: string, opts: ReplaceOptions, make: (tmp: string) => Promise<FileHandle | undefined>): Promise<void> {
  const tmp = tempSibling(target, opts.tempDir);
  try {
    const open = await make(tmp);
    const fh = open || (opts.storeContent ? undefined : await fs.open(tmp, 'r'));
    if (fh) {
      try {
        if (!opts.storeContent) await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await fs.rename(tmp, target);
  } catch (e) {
    await removeTree(tmp);
    throw e;
  }
}

/** Writes a file through replaceAtomic, creating its directory. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o644, opts: ReplaceOptions = {}): Promise<void> {
  await makeDirs(path.dirname(target));
  await replaceThrough(target, opts, async (tmp) => {
    // one descriptor for the writing, the mode and the sync: each call is a trip to the I/O threads
    const fh = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode); // the umask narrowed what open was asked for
    } catch (e) {
      await fh.close();
      throw e;
    }
    return fh;
  });
}

/**
 * A file that is not what its reader expects (no valid JSON, another size than promised). The file
 * layer's own type: the layer that named the file says what it means to the user.
 */
export class FileContentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileContentError';
  }
}

/** Copies a file through replaceAtomic; `size` is what the caller expects it to hold. */
export async function copyFileAtomic(src: string, target: string, size?: number, mode = 0o644): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  await replaceAtomic(target, async (tmp) => {
    await fs.copyFile(src, tmp, C.COPYFILE_EXCL);
    const st = await fs.stat(tmp);
    if (size !== undefined && st.size !== size) throw new FileContentError(`${src} is ${st.size} bytes, not the ${size} expected`);
    await fs.chmod(tmp, mode);
  });
}

/** Writes all of `b` at `at` (null: the descriptor's position): a write may take less than it was given. */
export function writeAllSync(fd: number, b: Uint8Array, at: number | null = null): void {
  for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off, at === null ? null : at + off);
}

/** Up to the first `bytes` bytes of a file: fewer when it is shorter. */
export async function readHead(file: string, bytes: number): Promise<Buffer> {
  const f = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(bytes);
    const { bytesRead } = await f.read(head, 0, bytes, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await f.close();
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** A JSON file, or undefined when there is none; a file that cannot be read throws as fs does (EACCES, ENOTDIR, …). */
export async function readJson<T>(p: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new FileContentError(`${p} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Make a tree writable by its owner so it can be removed (store paths are read-only). */
export async function makeWritable(p: string): Promise<void> {
  let st;
  try {
    st = await fs.lstat(p);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    await fs.chmod(p, (st.mode & 0o7777) | 0o700);
    for (const name of await fs.readdir(p)) await makeWritable(path.join(p, name));
  }
}

export async function removeTree(p: string): Promise<void> {
  await makeWritable(p);
  await fs.rm(p, { recursive: true, force: true });
}

/** Every path under dir (not dir itself), parents before their children; symlinks are not followed. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await listTree(p)));
  }
  return out;
}

/** An errno-shaped error for `p` (what fs itself would have thrown). */
function fsError(code: string, p: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${p}`), { code, path: p });
}

/**
 * `mkdir -p`, one directory at a time, where Node's recursive mkdir loops for ever (a parent that
 * refuses new entries with ENOENT, as /proc and /sys do). A failure carries the errno and the path
 * it happened at: the first existing ancestor that is not a directory (ENOTDIR), or the directory
 * that could not be made.
 */
export async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    let st: Stats | undefined;
    try {
      st = await fs.stat(at);
    } catch (e) {
      // ENOTDIR: a file further up, which the walk reaches
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
    }
    if (st && !st.isDirectory()) throw fsError('ENOTDIR', at);
    if (st || path.dirname(at) === at) break;
    missing.push(at);
  }
  for (const d of missing.reverse()) {
    try {
      await fs.mkdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw Object.assign(e as Error, { path: d });
    }
  }
}

/** Bytes free for this user on the filesystem of `p` (or of its nearest existing ancestor). */
export async function freeSpace(p: string): Promise<number> {
  for (let at = path.resolve(p); ; at = path.dirname(at)) {
    try {
      const st = await fs.statfs(at);
      return Number(st.bavail) * Number(st.bsize);
    } catch (e) {
      if (path.dirname(at) === at) throw e;
    }
  }
}
