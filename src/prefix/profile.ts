// The prefix's default profile: the user environment that puts the active Nix (and the CA bundle) on
// PATH, made by the prefix's own nix-env exactly as the official installer makes it.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exists } from '../util/fs.ts';
import type { Layout } from './layout.ts';
import { runNix } from './tools.ts';

const HINT = 're-run relonix bootstrap: it continues where it stopped; relonix status shows what is done';

/** Points the default profile at exactly these store paths (a real Nix profile generation). */
export async function installProfile(l: Layout, nix: string, paths: string[], env: NodeJS.ProcessEnv): Promise<void> {
  await fs.mkdir(path.dirname(l.profile), { recursive: true });
  // -i of store paths builds a user environment with builtin:buildenv, like the official installer
  const nixEnv = path.join(nix, 'bin', 'nix-env');
  // a fresh prefix has no profile to ask about (asking costs a Nix start)
  const current = (await exists(l.profile)) ? await runNix(nixEnv, ['--profile', l.profile, '-q', '--out-path'], { env, hint: HINT }).catch(() => '') : '';
  const have = new Set(
    current
      .split('\n')
      .map((line) => line.trim().split(/\s+/).pop())
      .filter(Boolean),
  );
  if (paths.every((p) => have.has(p)) && have.size === paths.length) return;
  // -r replaces whatever Nix or bundle the profile had, so it holds exactly these
  await runNix(nixEnv, ['--profile', l.profile, '-i', '-r', ...paths], { env, hint: HINT });
}
