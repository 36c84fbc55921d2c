// Asking the prefix's own Nix about its store: the closure of some paths and their registration
// (hash, size, deriver, references), which `nix-store --dump-db PATHS` prints as a reginfo.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../store/layout.ts';
import { parseRegInfo, type RegInfo } from '../store/reginfo.ts';
import { nixEnvironment } from '../bootstrap/nixenv.ts';
import { RelonixError, errorMessage } from '../util/errors.ts';
import { runTool, type ToolResult } from '../util/spawn.ts';

export interface NixStoreOptions {
  layout: Layout;
  /** store path of the Nix whose nix-store to run */
  nix?: string;
  /** explicit nix-store binary (tests with a host Nix) */
  nixStore?: string;
  env?: NodeJS.ProcessEnv;
}

/** `<nix>/bin/nix-store` when it exists, else an explicit one, else the one on PATH. */
export async function resolveNixStore(o: NixStoreOptions): Promise<string> {
  if (o.nixStore) return o.nixStore;
  if (o.nix) {
    const p = path.join(o.nix, 'bin', 'nix-store');
    try {
      await fs.access(p);
      return p;
    } catch {
      // fall through
    }
  }
  return 'nix-store';
}

export async function runNixStore(o: NixStoreOptions, args: string[], input?: string): Promise<string> {
  const bin = await resolveNixStore(o);
  const env = o.env ?? nixEnvironment(o.layout, { nix: o.nix });
  const what = `${bin} ${args.slice(0, 3).join(' ')}…`;
  const hint = 'check that the prefix has a working Nix (relonix status)';
  let r: ToolResult;
  try {
    r = await runTool(bin, args, env, input);
  } catch (e) {
    throw new RelonixError(`${what} could not start: ${errorMessage(e)}`, { hint, cause: e });
  }
  if (r.code !== 0) throw new RelonixError(`${what} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`, { hint });
  return r.stdout;
}

/** Registration records of the closure of `roots`, from the prefix's Nix database. */
export async function queryClosure(o: NixStoreOptions, roots: string[]): Promise<RegInfo[]> {
  const closure = (await runNixStore(o, ['--query', '--requisites', ...roots])).split('\n').filter(Boolean);
  if (closure.length === 0) return [];
  return parseRegInfo(await runNixStore(o, ['--dump-db', ...closure]), 'nix-store --dump-db');
}
