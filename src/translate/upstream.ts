// The cache translated from: a store dir as long as ours, and narinfos signed by its key. Everything
// here is checked before anything is published.

import { checkSigned, closureNarInfos, readNarInfo } from '../cache/closure.ts';
import { type PublicKey, parsePublicKey } from '../cache/keys.ts';
import { notACache, parseCacheInfo } from '../cache/meta.ts';
import type { NarInfo } from '../cache/narinfo.ts';
import { type CacheTarget, openTarget, type TargetOptions } from '../cache/targets.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { pool } from '../util/pool.ts';
import { POLICY, retry } from '../util/retry.ts';
import { storeDirLengthsDiffer } from './replace.ts';

export { NIXOS_CACHE, NIXOS_KEY } from './nixos.ts';

export interface Upstream {
  target: CacheTarget;
  storeDir: string;
  keys: PublicKey[];
}

/** Opens the upstream cache and refuses one whose store dir cannot be rewritten into ours in place. */
export async function openUpstream(
  url: string,
  keys: string[],
  storeDir: string,
  topts?: TargetOptions,
  retries: number = POLICY.lookup.retries,
): Promise<Upstream> {
  const target = openTarget(url, topts);
  const parsed = keys.map(parsePublicKey);
  if (parsed.length === 0) throw noUpstreamKey();
  let text: Buffer | undefined;
  try {
    text = await retry(() => target.get('nix-cache-info'), { retries });
  } catch (e) {
    throw upstreamUnreadable(url, e);
  }
  if (!text) throw notACache(url, 'has no nix-cache-info');
  const from = parseCacheInfo(text.toString('utf8'), url).storeDir;
  if (Buffer.byteLength(from) !== Buffer.byteLength(storeDir)) throw storeDirLengthsDiffer(from, storeDir, url);
  return { target, storeDir: from, keys: parsed };
}

/** Translating with no key to check upstream's signatures by. */
export function noUpstreamKey(): RelonixError {
  return new RelonixError('translating needs the public key of the cache translated from', { kind: 'usage', hint: 'pass --from-key NAME:BASE64' });
}

/** Upstream's nix-cache-info stayed unreadable after the retries. */
export function upstreamUnreadable(url: string, e: unknown): RelonixError {
  return new RelonixError(`${url}/nix-cache-info could not be read: ${errorMessage(e)}`, {
    kind: 'network',
    hint: 'check the --from URL and the network, then run again',
    cause: e,
  });
}

/** Upstream's narinfo of `storePath`, its signature checked; undefined when upstream lacks it. */
export async function upstreamNarInfo(up: Upstream, storePath: string): Promise<NarInfo | undefined> {
  const ni = await readNarInfo(up.target, storePath);
  if (ni) checkSigned(ni, up.keys);
  return ni;
}

/** The narinfos of many paths at once (a lookup is one round trip: many are in flight). */
export async function upstreamNarInfos(up: Upstream, paths: string[]): Promise<Map<string, NarInfo>> {
  const got = await pool(paths, 16, async (p) => [p, await upstreamNarInfo(up, p)] as const);
  return new Map(got.filter((g): g is [string, NarInfo] => g[1] !== undefined));
}

/** A path asked for that upstream does not have (a reference it lacks is an incomplete cache instead). */
export function notUpstream(url: string, storePath: string): RelonixError {
  return new RelonixError(`${url} has no ${storePath}`, {
    kind: 'usage',
    hint: 'translate only paths the cache has (check the hash part); an expression translates with -- ARGS',
  });
}

/** The closure of `roots` in upstream (following References), every narinfo signed; a missing one is an error. */
export async function upstreamClosure(up: Upstream, roots: string[]): Promise<Map<string, NarInfo>> {
  const got = await closureNarInfos([up.target], roots, up.keys, up.storeDir, (_t, p) => notUpstream(up.target.url, p));
  return new Map([...got].map(([p, g]) => [p, g.ni]));
}
