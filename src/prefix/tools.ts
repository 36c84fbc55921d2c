// The prefix's own Nix programs: which binary to run and running it with the prefix's environment,
// so nothing ever falls back to a Nix the host happens to have on its PATH.
import path from 'node:path';
import { isStoreBasename } from '../store/storepath.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { exists } from '../util/fs.ts';
import { runForeground, runTool, type ToolResult } from '../util/spawn.ts';
import { activeNix, nixEnvironment, prefixEnvironment } from './environment.ts';
import type { Layout } from './layout.ts';
import { noNix } from './state.ts';

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
  if (!o.nix) throw noNix(o.layout.prefix, `so it has no ${name} to run`);
  throw nixLacksTool(o.layout.prefix, name, o.nix);
}

/** The prefix's Nix is there, without one of its programs: it is damaged. */
export function nixLacksTool(prefix: string, name: string, nix: string): RelonixError {
  return new RelonixError(`the Nix of ${prefix} has no ${name} (looked in ${nix}/bin)`, {
    hint: 'relonix status shows what the prefix has; bootstrapping it again repairs it',
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
    throw nixToolWontStart(`${path.basename(bin)} ${shown}`, e, o.hint);
  }
  if (r.code !== 0) throw nixToolFailed(`${path.basename(bin)} ${shown}`, r, o.hint);
  return r.stdout;
}

/** A program of the prefix's Nix could not be started at all (`what`: it and its first arguments). */
export function nixToolWontStart(what: string, e: unknown, hint: string): RelonixError {
  return new RelonixError(`${what} could not start: ${errorMessage(e)}`, { hint, cause: e });
}

/** A program of the prefix's Nix ran and failed: the end of what it said, and `hint` for what next. */
export function nixToolFailed(what: string, r: Pick<ToolResult, 'code' | 'signal' | 'all'>, hint: string): RelonixError {
  return new RelonixError(`${what} failed (exit ${r.code ?? r.signal}):\n${r.all.trim().split('\n').slice(-20).join('\n')}`, { hint });
}

/** Runs the prefix's nix-store (see NixToolOptions) with the prefix's environment. */
export async function runNixStore(o: NixToolOptions, args: string[], input?: string): Promise<string> {
  const bin = await resolveNixTool(o, 'nix-store');
  return runNix(bin, args, { env: o.env ?? nixEnvironment(o.layout, { nix: o.nix }), input, hint: 'check that the prefix has a working Nix (relonix status)' });
}

/**
 * A command relonix run could not start, with the kind a shell's status gives (127 not found, 126
 * not runnable), so scripts can tell those from the command's own failure.
 */
export function cannotRun(cmd: string, e: NodeJS.ErrnoException): RelonixError {
  const why = e.code === 'ENOENT' ? "not found in the prefix's PATH" : e.code === 'EACCES' ? 'permission denied (not executable?)' : e.message;
  return new RelonixError(`cannot run ${cmd}: ${why}`, {
    kind: e.code === 'ENOENT' ? 'missing' : e.code === 'EACCES' ? 'unrunnable' : 'failure',
    hint: `is ${cmd} installed in the prefix? relonix run -- nix-env -q lists the profile`,
  });
}

/** Runs a command in the prefix's Nix environment; resolves to the exit code a shell would see. */
export async function runInPrefix(l: Layout, cmd: string, args: string[], o: { stdout?: 'ignore' | 'stderr' } = {}): Promise<number> {
  const r = await runForeground(cmd, args, await prefixEnvironment(l), o);
  if (r.startError) throw cannotRun(cmd, r.startError);
  return r.code;
}

/** The `.drv` paths of an evaluation by the prefix's own nix-instantiate (its `!output` suffixes dropped). */
export async function instantiate(l: Layout, args: string[]): Promise<string[]> {
  const { nix } = await activeNix(l);
  const bin = await resolveNixTool({ layout: l, nix }, 'nix-instantiate');
  const out = await runNix(bin, args, {
    env: await prefixEnvironment(l),
    hint: 'check the expression: relonix run -- nix-instantiate ARGS shows what Nix says',
  });
  const drvs = [
    ...new Set(
      out
        .split('\n')
        .map((s) => s.trim().replace(/!.*$/, ''))
        .filter(Boolean),
    ),
  ];
  if (drvs.length === 0) throw noDerivation(args);
  for (const d of drvs) if (!isDrvPath(d, l.storeDir)) throw notADerivation(d, l.storeDir);
  return drvs;
}

/** nix-instantiate evaluated the arguments to no derivation at all. */
export function noDerivation(args: string[]): RelonixError {
  return new RelonixError(`nix-instantiate ${args.join(' ')} gave no derivation`, { kind: 'usage', hint: 'pass an expression that evaluates to derivations' });
}

function isDrvPath(p: string, storeDir: string): boolean {
  return path.dirname(p) === storeDir && p.endsWith('.drv') && isStoreBasename(path.basename(p));
}

/** nix-instantiate printed something other than a .drv path (--eval, --parse, a value). */
export function notADerivation(line: string, storeDir: string): RelonixError {
  const shown = line.length > 120 ? `${line.slice(0, 120)}…` : line;
  return new RelonixError(`nix-instantiate printed ${JSON.stringify(shown)}, which is not a .drv path in ${storeDir}`, {
    kind: 'usage',
    hint: 'pass arguments that instantiate derivations (a file, -A ATTR, -E EXPR), not --eval, --parse or options that print something else',
  });
}
