import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../store/layout.ts';
import { readState } from './state.ts';
import { nixVariables, nixEnvironment } from './nixenv.ts';
import { RelonixError } from '../util/errors.ts';
import { exists } from '../util/fs.ts';

/** The active Nix of a prefix, or a clear error saying to bootstrap it first. */
export async function activeNix(l: Layout): Promise<{ nix: string; cacert?: string }> {
  const s = await readState(l);
  if (!s.nix || !(await exists(path.join(s.nix, 'bin', 'nix')))) {
    throw new RelonixError(`no Nix is installed in ${l.prefix} yet`, {
      kind: 'failure',
      hint: `run relonix bootstrap${l.prefix === '/tmp/nix' ? '' : ` --prefix ${l.prefix}`} first`,
    });
  }
  return { nix: s.nix, cacert: s.cacert };
}

/** The variables for this prefix; HOME, when the host gives none, is created under the prefix. */
export async function prefixVariables(l: Layout, base: NodeJS.ProcessEnv = process.env): Promise<Record<string, string>> {
  const a = await activeNix(l);
  const vars = nixVariables(l, { ...a, base });
  if (vars.HOME) await fs.mkdir(vars.HOME, { recursive: true });
  return vars;
}

export async function prefixEnvironment(l: Layout, base: NodeJS.ProcessEnv = process.env): Promise<NodeJS.ProcessEnv> {
  const a = await activeNix(l);
  const env = nixEnvironment(l, { ...a, base });
  if (!base.HOME && env.HOME) await fs.mkdir(env.HOME, { recursive: true });
  return env;
}
