// Writing an edit to disk: one path, whatever the caller. The steps are a generator of file
// system calls; a synchronous driver (relonix patchelf over hundreds of files) and an asynchronous
// one (patchFile, relocateFile) run them and differ in nothing else.
//
// An edit that keeps the file's layout below its old end is written in place, touching only what
// changed, in an order where the file is a valid ELF after every step: first the appended segment
// (beyond the old end, where nothing points yet) and any other bytes nothing reads yet, then the
// ELF header that switches to the new program header table, then the dynamic table, strings and
// section headers edited in place, each as one write. A crash or a full disk in between leaves a
// working file with the old or the new values, never a torn one; a failed append is cut off again.
// This keeps hard links (Nix store optimisation hard-links identical files) and makes bulk edits
// cheap: writing every byte to a temporary file costs a full block allocation on ext4. An edit
// that rewrites the whole file (a segment relonix added is rebuilt, or the file's contents shift)
// goes through a temporary sibling and a rename, so a crash leaves the old or the new file; mode
// (read-only included) and, where permitted, owner are kept. A file with several hard links is
// rewritten in place instead, because a rename would split it from its other names.

import {
  constants as C,
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  promises as fs,
  ftruncateSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { tempSibling, writeAllSync } from '../util/fs.ts';
import type { EditPlan } from './plan/types.ts';

interface Stat {
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  regular: boolean;
}

/** One file system call; `at: null` writes at the current position (pipes and devices cannot seek). */
type Op =
  | { op: 'stat'; path: string }
  | { op: 'realpath'; path: string }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'open'; path: string; flags: number; mode?: number }
  | { op: 'write'; fd: number; data: Uint8Array; at: number | null }
  | { op: 'truncate'; fd: number; length: number }
  | { op: 'fchown'; fd: number; uid: number; gid: number }
  | { op: 'fchmod'; fd: number; mode: number }
  | { op: 'close'; fd: number }
  | { op: 'rename'; from: string; to: string }
  | { op: 'rm'; path: string };

// Each step yields a call and receives its result (a Stat, a path, a descriptor or nothing).
type Steps<T = void> = Generator<Op, T, unknown>;

function* stat(p: string): Steps<Stat> {
  return (yield { op: 'stat', path: p }) as Stat;
}

function* open(p: string, flags: number, mode?: number): Steps<number> {
  return (yield { op: 'open', path: p, flags, mode }) as number;
}

const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException)?.code;

/** Write `plan` over the file it was read from; `orig` is the parsed buffer, `complete` whether it holds every byte. */
function* planSteps(file: string, plan: EditPlan, orig: Buffer, complete: boolean): Steps {
  if (plan.pre !== orig) return yield* replaceSteps(file, plan.pre.subarray(0, plan.base), IN_PLACE);
  try {
    yield* patchSteps(file, plan, orig.length);
  } catch (err) {
    // A running program cannot be opened for writing, but it can be replaced.
    if (code(err) !== 'ETXTBSY' || !complete) throw err;
    yield* replaceSteps(file, assemble(plan), IN_PLACE);
  }
}

/** The whole edited file of an in-place plan. */
function assemble(plan: EditPlan): Buffer {
  if (!plan.seg) return plan.pre.subarray(0, plan.base);
  return Buffer.concat([plan.pre.subarray(0, plan.base), Buffer.alloc(plan.off0 - plan.base), plan.seg]);
}

/**
 * The in-place writes of a plan, in the order that keeps the file valid at every step: the bytes
 * nothing reads yet, then the changed ranges by offset, which puts the ELF header first.
 */
export function writeOrder(plan: EditPlan): Array<[number, number]> {
  return [...(plan.fresh ?? []), ...plan.dirty];
}

function* patchSteps(file: string, plan: EditPlan, origLength: number): Steps {
  const st = yield* stat(file);
  const mode = st.mode & 0o7777;
  const writable = (mode & 0o200) !== 0;
  if (!writable) yield { op: 'chmod', path: file, mode: mode | 0o200 };
  try {
    const fd = yield* open(file, C.O_WRONLY);
    try {
      if (plan.seg) {
        try {
          yield { op: 'write', fd, data: plan.seg, at: plan.off0 };
        } catch (err) {
          yield { op: 'truncate', fd, length: origLength };
          throw err;
        }
      }
      for (const [a, b] of writeOrder(plan)) yield { op: 'write', fd, data: plan.pre.subarray(a, b), at: a };
    } finally {
      yield { op: 'close', fd };
    }
  } finally {
    if (!writable) yield { op: 'chmod', path: file, mode };
  }
}

interface ReplaceOptions {
  /** The new mode; the file's own when left out. */
  mode?: number;
  /** Make a read-only directory writable for the rename (store directories are), and read-only again. */
  unlockDir: boolean;
}

/** Edits of a file in its own directory: keep its mode, and open a read-only store directory for the rename. */
const IN_PLACE: ReplaceOptions = { unlockDir: true };

/** Replace a regular file's content. */
function* replaceSteps(file: string, data: Buffer, opts: ReplaceOptions): Steps {
  const st = yield* stat(file);
  const mode = opts.mode ?? st.mode & 0o7777;
  if (st.nlink > 1) {
    const writable = (st.mode & 0o200) !== 0;
    if (!writable) yield { op: 'chmod', path: file, mode: (st.mode & 0o7777) | 0o200 };
    try {
      const fd = yield* open(file, C.O_WRONLY);
      try {
        yield { op: 'write', fd, data, at: 0 };
        yield { op: 'truncate', fd, length: data.length };
      } finally {
        yield { op: 'close', fd };
      }
    } finally {
      if (!writable || opts.mode !== undefined) yield { op: 'chmod', path: file, mode };
    }
    return;
  }
  yield* createSteps(file, data, mode, opts.unlockDir, st);
}

/** Write `data` to a temporary sibling of `file` (util/fs.ts names it) and rename it over `file`. */
function* createSteps(file: string, data: Buffer, mode: number, unlockDir: boolean, owner?: Stat): Steps {
  const dir = path.dirname(file);
  const tmp = tempSibling(file);
  const attempt = function* (): Steps {
    const fd = yield* open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    try {
      yield { op: 'write', fd, data, at: 0 };
      if (owner) {
        try {
          yield { op: 'fchown', fd, uid: owner.uid, gid: owner.gid };
        } catch {
          // not permitted for other owners: keep ours
        }
      }
      yield { op: 'fchmod', fd, mode };
    } finally {
      yield { op: 'close', fd };
    }
    yield { op: 'rename', from: tmp, to: file };
  };
  try {
    yield* attempt();
  } catch (err) {
    yield { op: 'rm', path: tmp };
    if (code(err) !== 'EACCES' || !unlockDir) throw err;
    const dmode = (yield* stat(dir)).mode & 0o7777;
    yield { op: 'chmod', path: dir, mode: dmode | 0o200 };
    try {
      yield* attempt();
    } catch (e2) {
      yield { op: 'rm', path: tmp };
      throw e2;
    } finally {
      yield { op: 'chmod', path: dir, mode: dmode };
    }
  }
}

/**
 * Write a whole new file to `target` (patchelf's --output). A regular file (or a new name) gets
 * `data` through a temporary sibling and `mode`; anything else, a character device or a FIFO, is
 * written into as it is, and never chmod-ed, chowned, renamed over or replaced.
 */
function* outputSteps(target: string, data: Buffer, mode: number): Steps {
  let st: Stat | undefined;
  try {
    st = yield* stat(target);
  } catch (err) {
    if (code(err) !== 'ENOENT') throw err;
  }
  if (!st) return yield* createSteps(target, data, mode, false);
  if (st.regular) return yield* replaceSteps((yield { op: 'realpath', path: target }) as string, data, { mode, unlockDir: false });
  const fd = yield* open(target, C.O_WRONLY);
  try {
    yield { op: 'write', fd, data, at: null };
  } finally {
    yield { op: 'close', fd };
  }
}

function statOf(s: import('node:fs').Stats): Stat {
  return { mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, regular: s.isFile() };
}

function callSync(o: Op): unknown {
  switch (o.op) {
    case 'stat':
      return statOf(statSync(o.path));
    case 'realpath':
      return realpathSync(o.path);
    case 'chmod':
      return chmodSync(o.path, o.mode);
    case 'open':
      return openSync(o.path, o.flags, o.mode);
    case 'write':
      return writeAllSync(o.fd, o.data, o.at);
    case 'truncate':
      return ftruncateSync(o.fd, o.length);
    case 'fchown':
      return fchownSync(o.fd, o.uid, o.gid);
    case 'fchmod':
      return fchmodSync(o.fd, o.mode);
    case 'close':
      return closeSync(o.fd);
    case 'rename':
      return renameSync(o.from, o.to);
    case 'rm':
      return rmSync(o.path, { force: true });
  }
}

// The asynchronous driver keeps file handles by descriptor number for the steps that use them.
const handles = new Map<number, fs.FileHandle>();

async function callAsync(o: Op): Promise<unknown> {
  switch (o.op) {
    case 'stat':
      return statOf(await fs.stat(o.path));
    case 'realpath':
      return fs.realpath(o.path);
    case 'chmod':
      return fs.chmod(o.path, o.mode);
    case 'open': {
      const fh = await fs.open(o.path, o.flags, o.mode);
      handles.set(fh.fd, fh);
      return fh.fd;
    }
    case 'write': {
      const fh = handles.get(o.fd)!;
      for (let done = 0; done < o.data.length; ) {
        done += (await fh.write(o.data, done, o.data.length - done, o.at === null ? null : o.at + done)).bytesWritten;
      }
      return undefined;
    }
    case 'truncate':
      return handles.get(o.fd)!.truncate(o.length);
    case 'fchown':
      return handles.get(o.fd)!.chown(o.uid, o.gid);
    case 'fchmod':
      return handles.get(o.fd)!.chmod(o.mode);
    case 'close': {
      const fh = handles.get(o.fd)!;
      handles.delete(o.fd);
      return fh.close();
    }
    case 'rename':
      return fs.rename(o.from, o.to);
    case 'rm':
      return fs.rm(o.path, { force: true });
  }
}

function runSync<T>(g: Steps<T>): T {
  let r = g.next();
  while (!r.done) {
    let value: unknown;
    try {
      value = callSync(r.value);
    } catch (err) {
      r = g.throw(err);
      continue;
    }
    r = g.next(value);
  }
  return r.value;
}

async function runAsync<T>(g: Steps<T>): Promise<T> {
  let r = g.next();
  while (!r.done) {
    let value: unknown;
    try {
      value = await callAsync(r.value);
    } catch (err) {
      r = g.throw(err);
      continue;
    }
    r = g.next(value);
  }
  return r.value;
}

/** Write a plan made with planEdit(…, mutate = true) over the file it was read from (`orig`, now holding the edited prefix). */
export function writePlanSync(file: string, plan: EditPlan, orig: Buffer, complete = false): void {
  runSync(planSteps(file, plan, orig, complete));
}

export async function writePlan(file: string, plan: EditPlan, orig: Buffer, complete = true): Promise<void> {
  await runAsync(planSteps(file, plan, orig, complete));
}

export function writeOutputSync(target: string, data: Buffer, mode: number): void {
  runSync(outputSteps(target, data, mode));
}
