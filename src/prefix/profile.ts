// The prefix's default profile: the user environment that puts the active Nix (and the CA bundle) on
// PATH, made by the prefix's own nix-env exactly as the official installer makes it. What else the
// user installed there (nix-env -i) stays through every bootstrap.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exists } from '../util/fs.ts';
import type { Layout } from './layout.ts';
import { runNix } from './tools.ts';

const HINT = 're-run relonix bootstrap: it continues where it stopped; relonix status shows what is done';

interface Element {
  name: string;
  outPath: string;
}

/** Pure: `nix-env -q --out-path` as name and output path per element. */
export function parseElements(text: string): Element[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((w) => w.length >= 2)
    .map((w) => ({ name: w[0]!, outPath: w[w.length - 1]! }));
}

/**
 * Points the default profile at these store paths (a real Nix profile generation), in place of
 * `replaces` (the Nix and CA bundle an earlier bootstrap installed); every other element stays.
 */
export async function installProfile(l: Layout, nix: string, paths: string[], env: NodeJS.ProcessEnv, replaces: string[] = []): Promise<void> {
  await fs.mkdir(path.dirname(l.profile), { recursive: true });
  // -i of store paths builds a user environment with builtin:buildenv, like the official installer
  const nixEnv = path.join(nix, 'bin', 'nix-env');
  const profile = ['--profile', l.profile];
  const run = (args: string[]) => runNix(nixEnv, [...profile, ...args], { env, hint: HINT });
  // a fresh prefix has no profile to ask about (asking costs a Nix start)
  if (!(await exists(l.profile))) {
    await run(['-i', '-r', ...paths]);
    return;
  }
  const have = parseElements(await run(['-q', '--out-path']));
  const stale = have.filter((e) => replaces.includes(e.outPath) && !paths.includes(e.outPath));
  if (paths.every((p) => have.some((e) => e.outPath === p)) && stale.length === 0) return;
  // the old Nix and bundle go first, by their full names: a successor of another name (the cache's
  // Nix built for the prefix) would otherwise collide with them in the new generation
  if (stale.length) await run(['-e', ...stale.map((e) => e.name)]);
  // -i replaces the elements of the same name and keeps the rest: what the user installed stays
  await run(['-i', ...paths]);
}
