// The derivation closure of an evaluation, read from the prefix's store: every .drv parsed, and how
// every other input was made. The database does not say how a source was added (Nix 2.8's
// nix-store has no query for it, and `nix path-info --json` changes shape between versions), so
// each one is named by the formula that gives its path: a path that follows from its contents in
// exactly one way.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { type NixToolOptions, runNixStore } from '../prefix/tools.ts';
import { parseDerivation } from '../store/aterm.ts';
import { dumpPath } from '../store/nar/write.ts';
import { parseNarHashField, parseRegInfo, type RegInfo } from '../store/reginfo.ts';
import { parseStorePath } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import { type HashMethod, makeFixedOutputPath, makeTextPath } from './paths.ts';
import type { Closure, SourceContent } from './twin.ts';

export interface LoadedClosure {
  closure: Closure;
  /** the registration of every source of the closure, by path */
  records: Map<string, RegInfo>;
}

/**
 * Every derivation and source that the derivations `drvs` need, from the prefix's store. A
 * derivation's references are its inputs (Nix registers a .drv with exactly its input derivations
 * and sources), so the closure follows from the .drv files themselves; only the sources' records
 * come from the database, in one nix-store call a round (usually one: a source rarely names another).
 */
export async function loadClosure(o: NixToolOptions, drvs: string[]): Promise<LoadedClosure> {
  const storeDir = o.layout.storeDir;
  const closure: Closure = { storeDir, derivations: new Map(), sources: new Map() };
  const records = new Map<string, RegInfo>();
  const seen = new Set<string>();
  for (let next = drvs; next.length; ) {
    const sources: string[] = [];
    const queue = [...next];
    for (let i = 0; i < queue.length; i++) {
      const p = queue[i]!;
      if (seen.has(p)) continue;
      seen.add(p);
      if (!p.endsWith('.drv')) {
        sources.push(p);
        continue;
      }
      const drv = parseDerivation(await fs.readFile(p));
      closure.derivations.set(p, drv);
      queue.push(...drv.inputDrvs.map((d) => d.path), ...drv.inputSrcs);
    }
    const regs = sources.length ? parseRegInfo(await runNixStore(o, ['--dump-db', ...sources]), 'nix-store --dump-db') : [];
    for (const r of regs) {
      records.set(r.path, r);
      closure.sources.set(r.path, await sourceContent(r, storeDir));
    }
    next = regs.flatMap((r) => r.references).filter((p) => !seen.has(p));
  }
  return { closure, records };
}

const ALGOS = ['sha256', 'sha1', 'sha512', 'md5'];

/** How a source was made: the one content address (or text) whose formula gives its path. */
export async function sourceContent(r: RegInfo, storeDir: string): Promise<SourceContent> {
  const { name } = parseStorePath(r.path, storeDir);
  const fixed = (method: HashMethod, algo: string, hex: string): SourceContent | undefined =>
    makeFixedOutputPath(method, algo, hex, name, storeDir) === r.path ? { kind: 'fixed', method, algo, hex } : undefined;
  // what `./file` and `builtins.path` add: its NAR hash is its content address
  const added = r.references.length ? undefined : fixed('recursive', 'sha256', parseNarHashField(r.narHash).toString('hex'));
  if (added) return added;
  const st = await fs.lstat(r.path);
  if (st.isFile()) {
    const text = await fs.readFile(r.path);
    if (makeTextPath(name, text, r.references, storeDir) === r.path) return { kind: 'text', text, references: r.references };
    for (const algo of ALGOS) {
      const found = fixed('flat', algo, createHash(algo).update(text).digest('hex'));
      if (found) return found;
    }
  }
  for (const algo of ALGOS.slice(1)) {
    const h = createHash(algo);
    for await (const b of dumpPath(r.path)) h.update(b);
    const found = fixed('recursive', algo, h.digest('hex'));
    if (found) return found;
  }
  throw sourceUnaddressed(r.path);
}

/** A source of the evaluation whose path no content address (nor text) gives. */
export function sourceUnaddressed(p: string): RelonixError {
  return new RelonixError(`${p} is an input of the evaluation, but no content address or text gives its path`, {
    kind: 'integrity',
    hint: 'only sources added from disk, by builtins.path, builtins.toFile or a fetcher can be translated; check the store with nix-store --verify --check-contents',
  });
}
