// A throwaway Nix store at a store dir of our choosing, driven by the host's Nix (as root: a local
// store), and the derivation closure of what it evaluated, read the way translate takes it.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseDerivation } from '../../src/store/aterm.ts';
import { parseContentAddress } from '../../src/translate/paths.ts';
import type { Closure, SourceContent } from '../../src/translate/twin.ts';

export interface TempStore {
  root: string;
  storeDir: string;
  env: NodeJS.ProcessEnv;
}

export async function tempStore(root: string): Promise<TempStore> {
  await fs.mkdir(path.join(root, 'etc'), { recursive: true });
  await fs.writeFile(path.join(root, 'etc', 'nix.conf'), 'sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command\n');
  const storeDir = path.join(root, 'store');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    USER: 'root',
    NIX_STORE_DIR: storeDir,
    NIX_STATE_DIR: path.join(root, 'var', 'nix'),
    NIX_LOG_DIR: path.join(root, 'var', 'log', 'nix'),
    NIX_CONF_DIR: path.join(root, 'etc'),
  };
  return { root, storeDir, env };
}

export function nix(s: TempStore, cmd: string, args: string[]): Buffer {
  return execFileSync(cmd, args, { env: s.env, maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The .drv paths nix-instantiate prints for `file`, in its order (without the `!output` it adds when the first output is not `out`). */
export function instantiate(s: TempStore, file: string): string[] {
  return nix(s, 'nix-instantiate', [file])
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.replace(/!.*$/, ''));
}

interface PathInfo {
  path: string;
  ca?: string;
  references: string[];
}

/** Every derivation and source the derivations `drvs` need, as the store holds them. */
export async function loadClosure(s: TempStore, drvs: string[]): Promise<Closure> {
  const infos = JSON.parse(nix(s, 'nix', ['path-info', '--json', '--recursive', '--derivation', ...drvs]).toString()) as PathInfo[];
  const closure: Closure = { storeDir: s.storeDir, derivations: new Map(), sources: new Map() };
  for (const i of infos) {
    if (i.path.endsWith('.drv')) {
      closure.derivations.set(i.path, parseDerivation(await fs.readFile(i.path)));
      continue;
    }
    if (!i.ca) throw new Error(`${i.path} has no content address`);
    const ca = parseContentAddress(i.ca);
    const content: SourceContent = ca.kind === 'fixed' ? ca : { kind: 'text', text: await fs.readFile(i.path), references: i.references };
    closure.sources.set(i.path, content);
  }
  return closure;
}
