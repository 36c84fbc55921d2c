// What a bundle holds, from the words on the command line: store paths (realised first: the prefix's
// Nix substitutes what its store lacks), paths that lead into the store (./result), Nix files and
// expressions, or attributes of --file, each built by the prefix's nix-build. Every root is held by
// a GC root under the prefix until the bundle is written, so a garbage collection cannot take it.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../prefix/layout.ts';
import { resolveNixTool } from '../prefix/tools.ts';
import { parseStoreBasename } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import { exists } from '../util/fs.ts';
import { runForeground } from '../util/spawn.ts';

export interface InstallableOptions {
  layout: Layout;
  nix: string;
  env: NodeJS.ProcessEnv;
  /** --file: installables that are not store paths are attributes of this file */
  file?: string;
  /** where the GC roots go: a fresh directory the caller removes */
  rootsDir: string;
  log: (msg: string) => void;
}

export interface Resolved {
  /** the store paths, the first installable's first; each once */
  roots: string[];
  /** the rest of a first installable that named a path inside a store path: the entry, unless --entry says otherwise */
  entry?: string;
}

/** `p` as a store path and the path inside it, when it lies in the store dir. */
function inStore(storeDir: string, p: string): { path: string; rest: string } | undefined {
  if (!p.startsWith(`${storeDir}/`)) return undefined;
  const [base = '', ...rest] = p.slice(storeDir.length + 1).split('/');
  try {
    parseStoreBasename(base);
  } catch (e) {
    throw namesNoStorePath(p, storeDir, e);
  }
  return { path: `${storeDir}/${base}`, rest: rest.filter(Boolean).join('/') };
}

/** An installable inside the store dir that is not a store path, nor inside one. */
export function namesNoStorePath(p: string, storeDir: string, cause?: unknown): RelonixError {
  return new RelonixError(`${p} is in the store dir ${storeDir} but names no store path`, {
    kind: 'usage',
    hint: 'name a store path, <store dir>/<hash>-<name>, or something inside one',
    cause,
  });
}

/** nix-build or nix-store could not make an installable (its own messages went to the terminal). */
export function installableFailed(tool: 'nix-store' | 'nix-build', arg: string, code: number | null, file?: string): RelonixError {
  return new RelonixError(`${tool} could not ${tool === 'nix-build' ? 'build' : 'realise'} ${arg} (exit ${code}; its messages are above)`, {
    hint: file
      ? `check the attribute: relonix run -- nix-build ${file} -A ${arg}`
      : 'pass a store path, a path into the store (./result), a Nix file, an expression, or --file FILE with attribute names',
  });
}

/** How the prefix's Nix makes one installable: the program and its arguments (without the root). */
async function plan(o: InstallableOptions, arg: string): Promise<{ tool: 'nix-store' | 'nix-build'; args: string[]; rest?: string }> {
  if (o.file) return { tool: 'nix-build', args: [o.file, '-A', arg] };
  const direct = inStore(o.layout.storeDir, path.posix.normalize(arg));
  if (direct) return { tool: 'nix-store', args: ['--realise', direct.path], rest: direct.rest };
  if (await exists(arg)) {
    const real = inStore(o.layout.storeDir, await fs.realpath(arg));
    if (real) return { tool: 'nix-store', args: ['--realise', real.path], rest: real.rest };
    return { tool: 'nix-build', args: [path.resolve(arg)] };
  }
  return { tool: 'nix-build', args: ['-E', arg] };
}

/** The store paths the links `<dir>/<name>`, `<name>-2`, `<name>-dev`, … point at, `<name>` first. */
async function linked(dir: string, name: string): Promise<string[]> {
  const names = (await fs.readdir(dir))
    .filter((n) => n === name || n.startsWith(`${name}-`))
    .sort((a, b) => (a === name ? -1 : b === name ? 1 : a < b ? -1 : 1));
  return Promise.all(names.map((n) => fs.readlink(path.join(dir, n))));
}

export async function resolveInstallables(o: InstallableOptions, args: string[]): Promise<Resolved> {
  const roots: string[] = [];
  let entry: string | undefined;
  for (const [i, arg] of args.entries()) {
    const p = await plan(o, arg);
    const bin = await resolveNixTool({ layout: o.layout, nix: o.nix }, p.tool);
    const root = `r${i}`;
    const rootArgs = p.tool === 'nix-build' ? ['--out-link', path.join(o.rootsDir, root)] : ['--add-root', path.join(o.rootsDir, root)];
    o.log(p.tool === 'nix-build' ? `building ${arg} with nix-build` : `realising ${p.args[1]}`);
    const r = await runForeground(bin, [...p.args, ...rootArgs], o.env, { stdout: 'ignore' });
    const outs = r.code === 0 ? await linked(o.rootsDir, root) : [];
    if (r.code !== 0 || outs.length === 0) {
      throw installableFailed(p.tool, arg, r.code, o.file);
    }
    if (i === 0 && p.rest) entry = p.rest;
    for (const out of outs) if (!roots.includes(out)) roots.push(out);
  }
  return { roots, ...(entry === undefined ? {} : { entry }) };
}
