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

function refuse(message: string, hint: string): RelonixError {
  return new RelonixError(message, { kind: 'usage', hint });
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
    throw refuse(`${root} has no bin/, so there is no program to guess`, 'name the program: --entry PATH (a path inside the first store path)');
  }
  if (names.length === 1) return `bin/${names[0]}`;
  throw refuse(
    `${root}/bin holds ${names.length} programs${names.length ? ` (${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''})` : ''}: which one should the bundle run?`,
    `name it: --entry bin/${names[0] ?? 'NAME'}`,
  );
}

/** The absolute path of the entry. */
async function entryPath(i: EntryInput): Promise<string> {
  const given = i.entry ?? (await defaultEntry(i.root));
  if (path.isAbsolute(given)) {
    const owner = storePathOf(i.storeDir, path.normalize(given));
    if (!owner || !i.closure.has(owner))
      throw refuse(`the entry ${given} is not in the closure being bundled`, `name a path inside ${i.root}, such as bin/NAME`);
    return path.normalize(given);
  }
  const rel = path.posix.normalize(given);
  if (rel === '..' || rel.startsWith('../')) throw refuse(`the entry ${given} leaves ${i.root}`, 'name a path inside the first store path, such as bin/NAME');
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
    throw refuse(`the entry ${abs} does not exist`, `look inside: ls ${i.root}/bin`);
  }
  const owner = storePathOf(i.storeDir, real);
  if (!owner || !i.closure.has(owner)) {
    throw refuse(
      `the entry ${abs} leads to ${real}, outside the closure being bundled`,
      'name the program where it lives, or bundle the store path that holds it too',
    );
  }
  if (!st.isFile() || !(st.mode & 0o111)) throw refuse(`the entry ${abs} is not an executable file`, `name a program, such as one in ${i.root}/bin`);
  return path.relative(i.storeDir, abs);
}
