// Asking the prefix's own Nix about its store: the closure of some paths and their registration
// (hash, size, deriver, references), which `nix-store --dump-db PATHS` prints as a reginfo.

import { type NixToolOptions, runNixStore } from '../prefix/tools.ts';
import { parseRegInfo, type RegInfo } from '../store/reginfo.ts';

/** Registration records of the closure of `roots`, from the prefix's Nix database. */
export async function queryClosure(o: NixToolOptions, roots: string[]): Promise<RegInfo[]> {
  const closure = (await runNixStore(o, ['--query', '--requisites', ...roots])).split('\n').filter(Boolean);
  if (closure.length === 0) return [];
  return parseRegInfo(await runNixStore(o, ['--dump-db', ...closure]), 'nix-store --dump-db');
}
