// What a cache gc removes, decided from a listing alone (pure): the closure of the roots stays, and
// so does everything younger than the grace period. The roots are the kept store paths, the Nix
// (and CA bundle) relonix.json names for each system, and every narinfo younger than the grace
// period: a publish in progress, on any host, has its NARs up before its narinfos, and its
// narinfos may name older paths it found in the cache and skipped. No lock across hosts is needed.
import path from 'node:path';
import { isStoreBasename, parseStorePath } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import type { Manifest } from './meta.ts';
import { type NarInfo, narInfoKey } from './narinfo.ts';
import type { CacheObject } from './target.ts';

export interface GcInput {
  /** the cache's listing */
  objects: CacheObject[];
  /** the narinfos read, by key */
  infos: Map<string, NarInfo>;
  /** the store dir nix-cache-info names, when there is one */
  storeDir?: string;
  /** the store paths of the keep file */
  keep: string[];
  /** the keep file's name, for messages */
  keepFile: string;
  manifest?: Manifest;
  /** systems whose Nix the user removes from relonix.json (and so from the roots) */
  dropNix: string[];
  graceSeconds: number;
  now: number;
  url: string;
}

export interface GcPlan {
  /** store paths kept, sorted */
  kept: string[];
  removedNarInfos: string[];
  removedNars: string[];
  /** bytes of what is removed */
  removedBytes: number;
  narInfoCount: number;
  /** keep-file lines that name nothing the cache holds, with why */
  missingRoots: { path: string; why: string }[];
  /** objects kept only because they are younger than the grace period */
  young: number;
  /** what a file cache holds that is not a regular file: never followed, never removed */
  leftAlone: CacheObject[];
  /** the systems whose entries relonix.json loses (dropNix that it names) */
  droppedNix: string[];
}

/** A keep set that names nothing in the cache: gc would remove all of it, which nobody means. */
export function keepMatchesNothing(file: string, listed: number, url: string, narInfos: number): RelonixError {
  const what = listed === 0 ? `${file} lists no store path` : `none of the ${listed} store path${listed === 1 ? '' : 's'} in ${file} is in ${url}`;
  return new RelonixError(`${what}, so gc would remove all ${narInfos} paths of the cache; nothing was removed`, {
    kind: 'usage',
    hint: `list in it the store paths to keep, one a line, as the cache names them (StorePath in its narinfos); to empty the cache on purpose, delete its directory or bucket`,
  });
}

/** Why a keep-file line names nothing the cache holds, or undefined when it names a path it has. */
function whyMissing(p: string, i: GcInput): string | undefined {
  try {
    parseStorePath(p, i.storeDir);
  } catch (e) {
    return (e as Error).message;
  }
  const ni = i.infos.get(narInfoKey(p));
  if (!ni) return 'not in the cache';
  return ni.storePath === p ? undefined : `the cache has ${ni.storePath} under that hash`;
}

export function planGc(i: GcInput): GcPlan {
  const graceMs = i.graceSeconds * 1000;
  const young = (o: CacheObject) => !o.modified || i.now - o.modified.getTime() < graceMs;
  const missingRoots: GcPlan['missingRoots'] = [];
  const roots: string[] = [];
  for (const p of i.keep) {
    const why = whyMissing(p, i);
    if (why) missingRoots.push({ path: p, why });
    else roots.push(p);
  }
  if (roots.length === 0) throw keepMatchesNothing(i.keepFile, i.keep.length, i.url, i.infos.size);
  const droppedNix = i.dropNix.filter((s) => i.manifest?.nix[s]);
  for (const [sys, e] of Object.entries(i.manifest?.nix ?? {})) {
    if (!droppedNix.includes(sys)) roots.push(e.path, ...(e.cacert ? [e.cacert] : []));
  }
  const byKey = new Map(i.objects.map((o) => [o.key, o]));
  // a narinfo younger than the grace period is a publish that may still be going on: a root
  for (const [k, ni] of i.infos) if (young(byKey.get(k)!)) roots.push(ni.storePath);

  const keep = new Set<string>();
  const stack = roots.flatMap((r) => (isStoreBasename(path.basename(r)) ? [narInfoKey(r)] : []));
  while (stack.length) {
    const k = stack.pop()!;
    const ni = i.infos.get(k);
    if (keep.has(k) || !ni) continue;
    keep.add(k);
    for (const r of ni.references) stack.push(narInfoKey(r));
  }
  const keptNars = new Set([...keep].map((k) => i.infos.get(k)!.url));
  let youngCount = 0;
  const removable = (o: CacheObject) => {
    if (!young(o)) return true;
    youngCount++;
    return false;
  };
  const removedNarInfos = [...i.infos.keys()].filter((k) => !keep.has(k) && removable(byKey.get(k)!)).sort();
  const nars = i.objects.filter((o) => !o.notRegular && o.key.startsWith('nar/') && !keptNars.has(o.key) && removable(o));
  const removedNars = nars.map((o) => o.key).sort();
  const removedBytes = [...removedNarInfos.map((k) => byKey.get(k)!), ...nars].reduce((n, o) => n + o.size, 0);
  return {
    kept: [...keep].map((k) => i.infos.get(k)!.storePath).sort(),
    removedNarInfos,
    removedNars,
    removedBytes,
    narInfoCount: i.infos.size,
    missingRoots,
    young: youngCount,
    leftAlone: i.objects.filter((o) => o.notRegular),
    droppedNix,
  };
}

/** The narinfo keys of a listing: regular files at the top of the cache. */
export function narInfoKeys(objects: CacheObject[]): string[] {
  return objects.filter((o) => !o.notRegular && !o.key.includes('/') && o.key.endsWith('.narinfo')).map((o) => o.key);
}
