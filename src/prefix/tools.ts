// The prefix's own Nix programs: which binary to run and running it with the prefix's environment,
// so nothing ever falls back to a Nix the host happens to have on its PATH.
import path from 'node:path';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { exists } from '../util/fs.ts';
import { shQuote } from '../util/shell.ts';
import { runForeground, runTool, type ToolResult } from '../util/spawn.ts';
import { nixEnvironment, prefixEnvironment } from './environment.ts';
import { DEFAULT_PREFIX, type Layout } from './layout.ts';

export interface NixToolOptions {
  layout: Layout;
  /** store path of the Nix whose programs to run */
  nix?: string;
  /** an explicit nix-store binary (a host Nix acting as the prefix's, in tests) */
  nixStore?: string;
  env?: NodeJS.ProcessEnv;
}

/** `<nix>/bin/<name>`; for nix-store an explicit binary wins. */
export async function resolveNixTool(o: NixToolOptions, name: string): Promise<string> {
  if (name === 'nix-store' && o.nixStore) return o.nixStore;
  if (o.nix) {
    const p = path.join(o.nix, 'bin', name);
    if (await exists(p)) return p;
  }
  throw new RelonixError(`the prefix ${o.layout.prefix} has no ${name} to run${o.nix ? ` (looked in ${o.nix}/bin)` : ''}`, {
    hint: `bootstrap it first (relonix bootstrap${o.layout.prefix === DEFAULT_PREFIX ? '' : ` --prefix ${shQuote(o.layout.prefix)}`}); relonix status shows what it has`,
  });
}

/**
 * Runs a Nix program to completion and returns its stdout; a failure carries the program's own
 * words and the hint for what to do next.
 */
export async function runNix(bin: string, args: string[], o: { env: NodeJS.ProcessEnv; input?: string; hint: string }): Promise<string> {
  const shown = args.length > 4 ? `${args.slice(0, 4).join(' ')} …` : args.join(' ');
  let r: ToolResult;
  try {
    r = await runTool(bin, args, o.env, o.input);
  } catch (e) {
    throw new RelonixError(`${path.basename(bin)} ${shown} could not start: ${errorMessage(e)}`, { hint: o.hint, cause: e });
  }
  if (r.code !== 0) {
    throw new RelonixError(`${path.basename(bin)} ${shown} failed (exit ${r.code ?? r.signal}):\n${r.all.trim().split('\n').slice(-20).join('\n')}`, {
      hint: o.hint,
    });
  }
  return r.stdout;
}

/** Runs the prefix's nix-store (see NixToolOptions) with the prefix's environment. */
export async function runNixStore(o: NixToolOptions, args: string[], input?: string): Promise<string> {
  const bin = await resolveNixTool(o, 'nix-store');
  return runNix(bin, args, { env: o.env ?? nixEnvironment(o.layout, { nix: o.nix }), input, hint: 'check that the prefix has a working Nix (relonix status)' });
}

/** Runs a command in the prefix's Nix environment; resolves to the exit code a shell would see. */
export async function runInPrefix(l: Layout, cmd: string, args: string[], o: { stdout?: 'ignore' | 'stderr' } = {}): Promise<number> {
  const r = await runForeground(cmd, args, await prefixEnvironment(l), o);
  if (r.startError) {
    // what a shell answers, so scripts can tell "not there" (127) and "not runnable" (126) from a failure
    const e = r.startError;
    const why = e.code === 'ENOENT' ? "not found in the prefix's PATH" : e.code === 'EACCES' ? 'permission denied (not executable?)' : e.message;
    process.stderr.write(`relonix: error: cannot run ${cmd}: ${why}\n`);
    process.stderr.write(`  fix: is ${cmd} installed in the prefix? relonix run -- nix-env -q lists the profile\n`);
  }
  return r.code;
}
