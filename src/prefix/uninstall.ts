// relonix uninstall: removes what relonix made of a prefix, and the store dir its state records,
// under both of the prefix's locks. It removes the layout's own entries by name, never the prefix
// directory wholesale, so files that are not relonix's stay (and are named).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isStoreBasename } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import { isTempName, listDir, removeTree } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { shQuote } from '../util/shell.ts';
import { isWrapper } from './environment.ts';
import { isPrefix } from './guard.ts';
import type { Layout } from './layout.ts';

export interface Removed {
  path: string;
  /** what it was, for the user */
  what: string;
}

export interface UninstallResult {
  /** a server of the prefix's that ran, and was stopped first */
  stopped?: string;
  removed: Removed[];
  /** entries left in the prefix directory because relonix did not make them */
  left: string[];
}

/** The entries of a prefix that relonix makes, besides the store dir and bin/. */
const OWN = ['etc', 'home', 'var'];

/** A name a Nix store dir may hold: a store path, its lock, Nix's link farm, relonix's temporaries. */
function storeEntry(name: string): boolean {
  return name === '.links' || isTempName(name) || isStoreBasename(name.replace(/\.(lock|chroot|check)$/, ''));
}

/** relonix uninstall of a directory relonix did not make a prefix. */
export function notAPrefix(dir: string, why: string): RelonixError {
  return new RelonixError(`${dir} is not a relonix prefix: ${why}`, {
    kind: 'usage',
    hint: 'relonix uninstall removes only a prefix relonix bootstrapped (it holds var/relonix); check --prefix (or RELONIX_PREFIX)',
  });
}

/** Pure: the store dir's entries that are not what a store holds; a store dir with any is not removed. */
export function foreignStoreEntries(names: string[]): string[] {
  return names.filter((n) => !storeEntry(n));
}

/** A store dir that holds what no store holds is not removed, nor is the prefix. */
export function foreignInStore(l: Layout, foreign: string[]): RelonixError {
  return new RelonixError(
    `the store dir ${l.storeDir} holds what no Nix store holds (${foreign.slice(0, 5).join(', ')}): relonix leaves it, and the prefix, as they are`,
    {
      kind: 'usage',
      hint: `move those files out of ${l.storeDir} and run relonix uninstall --prefix ${shQuote(l.prefix)} again`,
    },
  );
}

async function removeStore(l: Layout): Promise<Removed | undefined> {
  const names = await listDir(l.storeDir);
  if (!(await fs.lstat(l.storeDir).catch(() => undefined))) return undefined;
  const foreign = foreignStoreEntries(names);
  if (foreign.length) {
    throw foreignInStore(l, foreign);
  }
  const paths = names.filter((n) => isStoreBasename(n)).length;
  await removeTree(l.storeDir);
  return { path: l.storeDir, what: `the store, ${paths} store path${paths === 1 ? '' : 's'}` };
}

/** The wrappers relonix wrote in bin/ go; bin/ goes when nothing else is in it. */
async function removeWrappers(l: Layout): Promise<Removed | undefined> {
  const names = await listDir(l.binDir);
  let n = 0;
  for (const name of names) {
    const p = path.join(l.binDir, name);
    if (await isWrapper(p)) {
      await fs.rm(p, { force: true });
      n++;
    }
  }
  await fs.rmdir(l.binDir).catch(() => undefined);
  return n ? { path: l.binDir, what: `${n} wrapper${n === 1 ? '' : 's'} of the Nix programs` } : undefined;
}

/**
 * Removes the prefix: the store dir (checked to hold only store paths), the wrappers, etc/, home/
 * and var/ (state and lock last), then the directory itself if nothing else is left in it.
 */
export async function uninstallPrefix(l: Layout, o: { stopTranslator?: () => Promise<boolean> } = {}): Promise<UninstallResult> {
  const st = await fs.lstat(l.prefix).catch(() => undefined);
  if (!st) throw notAPrefix(l.prefix, 'it does not exist');
  if (!st.isDirectory()) throw notAPrefix(l.prefix, 'it is not a directory');
  if (!(await isPrefix(l.prefix))) throw notAPrefix(l.prefix, 'it has no var/relonix');
  const what = `relonix uninstall of ${l.prefix}`;
  return withLock(l.lockFile, { what }, () =>
    withLock(l.buildLockFile, { what }, async () => {
      // the translator serves from the prefix: it goes before what it serves
      const stopped = (await o.stopTranslator?.()) ? 'the translator' : undefined;
      const removed: Removed[] = [];
      const add = (r: Removed | undefined) => r && removed.push(r);
      add(await removeStore(l));
      add(await removeWrappers(l));
      for (const name of OWN) {
        const p = path.join(l.prefix, name);
        if (!(await fs.lstat(p).catch(() => undefined))) continue;
        await removeTree(p);
        removed.push({
          path: p,
          what:
            name === 'var'
              ? "Nix's database, profiles and logs, relonix's state"
              : name === 'etc'
                ? 'nix.conf and the profile scripts'
                : 'the home of a user without one',
        });
      }
      const left = await listDir(l.prefix);
      if (left.length === 0) {
        await fs.rmdir(l.prefix);
        removed.push({ path: l.prefix, what: 'the prefix directory' });
      }
      return { stopped, removed, left: left.sort() };
    }),
  );
}
