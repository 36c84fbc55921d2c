// Garbage collection of a cache: keep the closure of the given roots (computed from the narinfos'
// References), remove every other narinfo and every NAR no kept narinfo points at. Narinfos go
// before NARs, so the cache never has a narinfo without its NAR, even if gc is stopped halfway.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { retry, spent } from '../util/retry.ts';
import { MANIFEST_KEY, readManifest } from './meta.ts';
import { type NarInfo, narInfoKey, parseNarInfo } from './narinfo.ts';
import type { CacheTarget } from './targets.ts';

export interface GcResult {
  kept: string[];
  removedNarInfos: string[];
  removedNars: string[];
  missingRoots: string[];
}

export interface GcOptions {
  dryRun?: boolean;
  log?: (m: string) => void;
}

export async function gcCache(t: CacheTarget, roots: string[], opts: GcOptions = {}): Promise<GcResult> {
  try {
    return await collect(t, roots, opts);
  } catch (e) {
    throw spent(e, `cache gc of ${t.url} failed`, 'run it again: what is gone stays gone, and nothing a kept path needs is removed');
  }
}

async function collect(t: CacheTarget, roots: string[], opts: GcOptions): Promise<GcResult> {
  if (!t.list)
    throw new RelonixError(`${t.url} cannot be listed, so relonix cannot tell what to remove`, {
      kind: 'usage',
      hint: 'run gc against the file:// directory or the s3:// bucket behind the cache',
    });
  const keys = await retry(() => t.list!());
  const infos = new Map<string, NarInfo>();
  for (const k of keys.filter((k) => !k.includes('/') && k.endsWith('.narinfo'))) {
    const b = await retry(() => t.get(k));
    if (b) infos.set(k, parseNarInfo(b.toString('utf8'), `${t.url}/${k}`));
  }
  const keep = new Set<string>();
  const missingRoots: string[] = [];
  const stack = roots.map((r) => narInfoKey(r));
  roots.forEach((r, i) => {
    if (!infos.has(stack[i]!)) missingRoots.push(r);
  });
  while (stack.length) {
    const k = stack.pop()!;
    if (keep.has(k)) continue;
    const ni = infos.get(k);
    if (!ni) continue;
    keep.add(k);
    for (const r of ni.references) stack.push(narInfoKey(r));
  }
  const keptNars = new Set([...keep].map((k) => infos.get(k)!.url));
  const removedNarInfos = [...infos.keys()].filter((k) => !keep.has(k)).sort();
  const removedNars = keys.filter((k) => k.startsWith('nar/') && !keptNars.has(k)).sort();
  if (!opts.dryRun) {
    // a manifest naming a removed Nix would send restores to a hole: drop those entries first
    const m = await retry(() => readManifest(t));
    if (m) {
      let changed = false;
      for (const [sys, e] of Object.entries(m.nix)) {
        if (!keep.has(narInfoKey(e.path)) || (e.cacert && !keep.has(narInfoKey(e.cacert)))) {
          opts.log?.(`dropping ${sys} (${path.basename(e.path)}) from ${MANIFEST_KEY}: it is not kept`);
          delete m.nix[sys];
          changed = true;
        }
      }
      if (changed) await retry(() => t.put(MANIFEST_KEY, Buffer.from(`${JSON.stringify(m, null, 2)}\n`), 'application/json'));
    }
    for (const k of removedNarInfos) await retry(() => t.delete(k));
    for (const k of removedNars) await retry(() => t.delete(k));
  }
  return { kept: [...keep].map((k) => infos.get(k)!.storePath).sort(), removedNarInfos, removedNars, missingRoots };
}

/** The store paths a keep file lists, one a line; blank lines and `#` comments are skipped. */
export async function readKeepFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new RelonixError(`cannot read ${file}: ${errorMessage(e)}`, { kind: 'usage', hint: 'write the store paths to keep into it, one a line' });
  }
  return text
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && !s.startsWith('#'));
}
