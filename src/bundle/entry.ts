// The program a bundle runs: a path inside its first store path (bin/NAME), or anywhere in the closure
// when given whole. It must be an executable file once its symlinks are followed, in a store path of
// the closure, or it would not exist on the host.
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { RelonixError } from '../util/errors.ts';

export interface EntryInput {
  storeDir: string;
  /** the first installable's store path */
  root: string;
  /** every store path of the closure */
  closure: ReadonlySet<string>;
  /** --entry, or the rest of a first installable that named a path inside a store path */
  entry?: string;
}

/** No --entry, and the first store path has no bin/ to find one in. */
export function noEntryToGuess(root: string): RelonixError {
  return new RelonixError(`${root} has no bin/, so there is no program to guess`, {
    kind: 'usage',
    hint: 'name the program: --entry PATH (a path inside the first store path)',
  });
}

/** No --entry, and the first store path's bin/ holds no program, or several. */
export function entryAmbiguous(root: string, names: string[]): RelonixError {
  return new RelonixError(
    `${root}/bin holds ${names.length} programs${names.length ? ` (${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''})` : ''}: which one should the bundle run?`,
    { kind: 'usage', hint: `name it: --entry bin/${names[0] ?? 'NAME'}` },
  );
}

/** An absolute --entry in no store path of the closure. */
export function entryNotInClosure(given: string, root: string): RelonixError {
  return new RelonixError(`the entry ${given} is not in the closure being bundled`, { kind: 'usage', hint: `name a path inside ${root}, such as bin/NAME` });
}

/** A relative --entry that climbs out of the first store path. */
export function entryLeavesRoot(given: string, root: string): RelonixError {
  return new RelonixError(`the entry ${given} leaves ${root}`, { kind: 'usage', hint: 'name a path inside the first store path, such as bin/NAME' });
}

/** The entry (or what its symlinks lead to) does not exist. */
export function noSuchEntry(abs: string, root: string): RelonixError {
  return new RelonixError(`the entry ${abs} does not exist`, { kind: 'usage', hint: `look inside: ls ${root}/bin` });
}

/** The entry's symlinks lead out of the closure: it would not exist on the host. */
export function entryLeadsOutside(abs: string, real: string): RelonixError {
  return new RelonixError(`the entry ${abs} leads to ${real}, outside the closure being bundled`, {
    kind: 'usage',
    hint: 'name the program where it lives, or bundle the store path that holds it too',
  });
}

/** The entry is a directory, or a file that cannot be run. */
export function entryNotExecutable(abs: string, root: string): RelonixError {
  return new RelonixError(`the entry ${abs} is not an executable file`, { kind: 'usage', hint: `name a program, such as one in ${root}/bin` });
}

/** The store path that holds `p`, if it is in the store dir. */
function storePathOf(storeDir: string, p: string): string | undefined {
  if (!p.startsWith(`${storeDir}/`)) return undefined;
  return `${storeDir}/${p.slice(storeDir.length + 1).split('/')[0]}`;
}

/** With no --entry: the first store path itself when it is a program, else the one program in its bin/. */
async function defaultEntry(root: string): Promise<string> {
  const st = await fs.stat(root);
  if (st.isFile()) return '';
  let names: string[] = [];
  try {
    names = (await fs.readdir(path.join(root, 'bin'))).sort();
  } catch {
    throw noEntryToGuess(root);
  }
  if (names.length === 1) return `bin/${names[0]}`;
  throw entryAmbiguous(root, names);
}

/** The absolute path of the entry. */
async function entryPath(i: EntryInput): Promise<string> {
  const given = i.entry ?? (await defaultEntry(i.root));
  if (path.isAbsolute(given)) {
    const owner = storePathOf(i.storeDir, path.normalize(given));
    if (!owner || !i.closure.has(owner)) throw entryNotInClosure(given, i.root);
    return path.normalize(given);
  }
  const rel = path.posix.normalize(given);
  if (rel === '..' || rel.startsWith('../')) throw entryLeavesRoot(given, i.root);
  return rel === '.' ? i.root : path.join(i.root, rel);
}

/** The entry as the launcher names it: relative to the run dir, `<hash>-<name>/bin/NAME`. */
export async function resolveEntry(i: EntryInput): Promise<string> {
  const abs = await entryPath(i);
  let real: string;
  let st: Stats;
  try {
    real = await fs.realpath(abs);
    st = await fs.stat(real);
  } catch {
    throw noSuchEntry(abs, i.root);
  }
  const owner = storePathOf(i.storeDir, real);
  if (!owner || !i.closure.has(owner)) {
    throw entryLeadsOutside(abs, real);
  }
  if (!st.isFile() || !(st.mode & 0o111)) throw entryNotExecutable(abs, i.root);
  return path.relative(i.storeDir, abs);
}
