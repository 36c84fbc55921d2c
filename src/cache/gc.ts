// Garbage collection of a cache: keep the closure of the given roots (computed from the narinfos'
// References), remove every other narinfo and every NAR no kept narinfo points at. Narinfos go
// before NARs, so the cache never has a narinfo without its NAR, even if gc is stopped halfway.
import path from 'node:path';
import { RelonixError } from '../util/errors.ts';
import { parseNarInfo, narInfoKey, type NarInfo } from './narinfo.ts';
import type { CacheTarget } from './targets.ts';
import { readManifest, MANIFEST_KEY } from './meta.ts';
import { withRetry } from './publish.ts';

export interface GcResult {
  kept: string[];
  removedNarInfos: string[];
  removedNars: string[];
  missingRoots: string[];
}

export async function gcCache(t: CacheTarget, roots: string[], opts: { dryRun?: boolean; log?: (m: string) => void } = {}): Promise<GcResult> {
  if (!t.list) throw new RelonixError(`${t.url} cannot be listed, so relonix cannot tell what to remove`, { kind: 'usage', hint: 'run gc against the file:// directory or the s3:// bucket behind the cache' });
  const keys = await withRetry(() => t.list!());
  const infos = new Map<string, NarInfo>();
  for (const k of keys.filter((k) => !k.includes('/') && k.endsWith('.narinfo'))) {
    const b = await withRetry(() => t.get(k));
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
    const m = await readManifest(t);
    if (m) {
      let changed = false;
      for (const [sys, e] of Object.entries(m.nix)) {
        if (!keep.has(narInfoKey(e.path)) || (e.cacert && !keep.has(narInfoKey(e.cacert)))) {
          opts.log?.(`dropping ${sys} (${path.basename(e.path)}) from ${MANIFEST_KEY}: it is not kept`);
          delete m.nix[sys];
          changed = true;
        }
      }
      if (changed) await withRetry(() => t.put(MANIFEST_KEY, Buffer.from(JSON.stringify(m, null, 2) + '\n'), 'application/json'));
    }
    for (const k of removedNarInfos) await withRetry(() => t.delete(k));
    for (const k of removedNars) await withRetry(() => t.delete(k));
  }
  return { kept: [...keep].map((k) => infos.get(k)!.storePath).sort(), removedNarInfos, removedNars, missingRoots };
}
