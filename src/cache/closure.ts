// The narinfos of a closure, read from caches: each checked to describe the path asked for and to
// carry a signature by a trusted key, the closure followed through their References. What a restore
// and the translator's upstream read before they trust anything.
import { RelonixError } from '../util/errors.ts';
import { Limit, pool } from '../util/pool.ts';
import { POLICY, retry } from '../util/retry.ts';
import { type PublicKey, verifyNarInfo } from './keys.ts';
import { cacheIncomplete } from './meta.ts';
import { type NarInfo, narInfoForOtherPath, narInfoKey, readCachedNarInfo } from './narinfo.ts';
import type { CacheTarget } from './targets.ts';

/** The narinfo of `storePath` in `t`, parsed and checked to describe it; undefined when `t` has none. Retried `retries` times. */
export async function readNarInfo(t: CacheTarget, storePath: string, retries: number = POLICY.lookup.retries): Promise<NarInfo | undefined> {
  const key = narInfoKey(storePath);
  const b = await retry(() => t.get(key), { retries });
  if (!b) return undefined;
  const ni = readCachedNarInfo(b, `${t.url}/${key}`);
  if (ni.storePath !== storePath) throw narInfoForOtherPath(`${t.url}/${key}`, ni.storePath, storePath);
  return ni;
}

/** What a cache that lacks a path of the closure means: it is incomplete. */
function incompleteCache(targets: CacheTarget[], storePath: string): RelonixError {
  return cacheIncomplete(`${narInfoKey(storePath)} (in ${targets.map((t) => t.url).join(', ')})`, `and the closure needs ${storePath}`);
}

async function fetchNarInfo(targets: CacheTarget[], storePath: string, missing: typeof incompleteCache): Promise<{ ni: NarInfo; target: CacheTarget }> {
  for (const t of targets) {
    const ni = await readNarInfo(t, storePath);
    if (ni) return { ni, target: t };
  }
  throw missing(targets, storePath);
}

/** Refuses a narinfo that no trusted key signed. */
export function checkSigned(ni: NarInfo, keys: PublicKey[]): void {
  if (verifyNarInfo(ni, keys)) return;
  const names = ni.sigs.map((s) => s.split(':')[0]).join(', ') || 'none';
  throw notSignedByTrustedKey(ni.storePath, names, keys);
}

/** A narinfo no trusted key signed: altered, or signed with a key not given. */
export function notSignedByTrustedKey(storePath: string, signers: string, keys: PublicKey[]): RelonixError {
  return new RelonixError(`${storePath}: no valid signature by a trusted key (signatures by: ${signers}; trusted: ${keys.map((k) => k.name).join(', ')})`, {
    kind: 'integrity',
    hint: 'the narinfo was altered or signed with another key; pass the right trusted key, or republish the cache',
  });
}

/**
 * Narinfo lookups in flight at once: each is a small answer a round trip away, and a closure's level
 * waits for its slowest (40 ms a request, the fixture's 48 narinfos: about 80 ms sooner than 16).
 */
const NARINFO_LOOKUPS = 32;

/**
 * Reads the closure's narinfos (following References) and checks every signature. A root no cache
 * has is the error `missing` makes (by default: the cache is incomplete); a reference no cache has
 * always means the cache is incomplete, since its own narinfos name it. The narinfos of `expected`
 * (what the closure is said to hold) are asked for at once, beside the roots', rather than a level
 * of references at a time: over a network each level cost a round trip.
 */
export async function closureNarInfos(
  targets: CacheTarget[],
  roots: string[],
  keys: PublicKey[],
  storeDir: string,
  missing = incompleteCache,
  expected: string[] = [],
): Promise<Map<string, { ni: NarInfo; target: CacheTarget }>> {
  type Found = { ni: NarInfo; target: CacheTarget };
  const out = new Map<string, Found>();
  const limit = new Limit(NARINFO_LOOKUPS);
  const asked = new Map<string, Promise<Found | undefined>>();
  let walked = false;
  // the walk's own lookups go before those asked for ahead: a list that names what is no part of
  // the closure holds nothing up
  const lookup = (p: string, notFound: typeof incompleteCache, urgent = true) => {
    let got = asked.get(p);
    if (!got) {
      // what is still waiting for its turn once the walk is over is none of the closure's
      got = limit.run(async () => (walked ? undefined : fetchNarInfo(targets, p, notFound)), urgent);
      // one asked for ahead that the walk never reaches is nobody's failure
      got.catch(() => undefined);
      asked.set(p, got);
    }
    return got;
  };
  let frontier = [...new Set(roots)];
  for (const p of frontier) lookup(p, missing);
  // what the manifest says the closure holds, asked for at once: the walk below still decides what
  // the closure is, and checks each narinfo it takes
  for (const p of expected) lookup(p, incompleteCache, false);
  try {
    while (frontier.length) {
      // the walk waits for each lookup it makes: none of them is skipped
      const got = (await pool(frontier, frontier.length, (p) => lookup(p, incompleteCache))) as Found[];
      const next: string[] = [];
      for (const g of got) {
        checkSigned(g.ni, keys);
        out.set(g.ni.storePath, g);
        for (const r of g.ni.references) {
          const full = `${storeDir}/${r}`;
          if (!out.has(full) && !next.includes(full) && !frontier.includes(full)) next.push(full);
        }
      }
      frontier = next.filter((p) => !out.has(p));
    }
  } finally {
    walked = true;
  }
  return out;
}
