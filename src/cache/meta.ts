// The two cache-wide files: Nix's `nix-cache-info` and relonix's `relonix.json` manifest, which
// names the Nix (and CA bundle) to restore for each system.
import { isStoreBasename } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import type { CacheTarget } from './targets.ts';

export interface CacheInfo {
  storeDir: string;
  wantMassQuery?: boolean;
  priority?: number;
}

/** A URL whose nix-cache-info is missing or names no store dir: whatever it serves, it is no binary cache. */
export function notACache(url: string, why: string): RelonixError {
  return new RelonixError(`${url} ${why}: it is not a binary cache`, {
    kind: 'usage',
    hint: 'check the URL: a binary cache has a nix-cache-info that names its StoreDir (relonix publish writes one)',
  });
}

/** nix-cache-info's fields; `url` names the cache in a refusal. */
export function parseCacheInfo(text: string, url: string): CacheInfo {
  const f = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) f.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const storeDir = f.get('StoreDir');
  if (!storeDir) throw notACache(url, 'has a nix-cache-info that names no StoreDir');
  return { storeDir, wantMassQuery: f.get('WantMassQuery') === '1', priority: f.has('Priority') ? Number(f.get('Priority')) : undefined };
}

export function formatCacheInfo(c: CacheInfo): string {
  return `StoreDir: ${c.storeDir}\nWantMassQuery: ${c.wantMassQuery === false ? 0 : 1}\nPriority: ${c.priority ?? 40}\n`;
}

export const STORE_DIR_HINT =
  'store paths are only valid under the store dir they were built for: use a separate cache (URL or bucket) per store dir, or --prefix to match the cache';

export function storeDirMismatch(url: string, cacheStoreDir: string, storeDir: string): RelonixError {
  return new RelonixError(`the cache ${url} serves the store ${cacheStoreDir}, not ${storeDir}`, {
    kind: 'usage',
    hint: STORE_DIR_HINT,
  });
}

/** A cache that lacks an object a narinfo names, or that a closure needs: it is incomplete (not unreachable). */
export function cacheIncomplete(missing: string, neededBy: string): RelonixError {
  return new RelonixError(`${missing} is missing, ${neededBy}: the cache is incomplete`, {
    kind: 'failure',
    hint: 'publish the closure to it again (relonix publish uploads what is missing and skips the rest), then run this again',
  });
}

/** Reads nix-cache-info (undefined when absent) and refuses a cache for another store dir. */
export async function checkCacheInfo(t: CacheTarget, storeDir: string): Promise<CacheInfo | undefined> {
  const b = await t.get('nix-cache-info');
  if (!b) return undefined;
  const info = parseCacheInfo(b.toString('utf8'), t.url);
  if (info.storeDir !== storeDir) throw storeDirMismatch(t.url, info.storeDir, storeDir);
  return info;
}

export interface ManifestEntry {
  path: string;
  cacert?: string;
  publishedAt: string;
  /**
   * the `<hash>-<name>` of every path in the closure of the Nix and the CA bundle, as publish knew it:
   * a restore asks for all their narinfos at once rather than one level of references at a time
   * (see expectedClosure)
   */
  closure?: string[];
}

/**
 * The most paths a manifest entry's closure may list before it is passed over: a Nix and its CA
 * bundle need tens of paths, and a list this long costs a restore at most a few dozen round trips.
 */
const MAX_CLOSURE = 1000;

/**
 * The store paths an entry says its closure has, when it says so in a form that can be one: a
 * hint, nothing more (relonix.json is not signed), so what is odd about it is passed over, not refused.
 */
export function expectedClosure(e: ManifestEntry, storeDir: string): string[] {
  const c: unknown = e.closure;
  if (!Array.isArray(c) || c.length > MAX_CLOSURE) return [];
  // a store path's name as Nix checks it: no slash, nothing that walks out of the store dir
  return c.filter((b): b is string => typeof b === 'string' && isStoreBasename(b)).map((b) => `${storeDir}/${b}`);
}

export interface Manifest {
  version: 1;
  storeDir: string;
  nix: Record<string, ManifestEntry>;
}

export const MANIFEST_KEY = 'relonix.json';

export async function readManifest(t: CacheTarget): Promise<Manifest | undefined> {
  const b = await t.get(MANIFEST_KEY);
  if (!b) return undefined;
  let m: Manifest;
  try {
    m = JSON.parse(b.toString('utf8')) as Manifest;
  } catch (e) {
    throw badManifest(t.url, `is not valid JSON: ${(e as Error).message}`);
  }
  if (m.version !== 1 || typeof m.storeDir !== 'string' || typeof m.nix !== 'object' || m.nix === null) {
    throw badManifest(t.url, 'is not a version 1 relonix manifest');
  }
  return m;
}

/** A cache's relonix.json that is damaged or from another relonix: no Nix can be found through it. */
export function badManifest(url: string, why: string): RelonixError {
  return new RelonixError(`${url}/${MANIFEST_KEY} ${why}`, { kind: 'integrity', hint: 'publish to it again with this relonix' });
}
