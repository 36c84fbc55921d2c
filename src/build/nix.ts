// Nix first: a prefix that lost its Nix (a wiped /tmp) gets it back from the cache through the
// bootstrap's cache-only path; a Nix the cache does not name yet is what the uploader publishes
// first, so that the next restart can restore it.

import { runBootstrap } from '../bootstrap/engine.ts';
import { type Manifest, readManifest } from '../cache/meta.ts';
import type { CacheTarget } from '../cache/targets.ts';
import type { Layout } from '../prefix/layout.ts';
import { isBootstrapped, noNix, readState } from '../prefix/state.ts';
import { errorMessage, isKind, RelonixError } from '../util/errors.ts';
import { POLICY, retry } from '../util/retry.ts';
import type { NixRecord } from './uploader.ts';

export interface PrefixNix {
  nix: string;
  cacert?: string;
  /** restored from the cache by this run */
  restored: boolean;
}

/** The manifest (undefined when there is none), or why the cache could not be read now. */
async function manifestOf(target: CacheTarget): Promise<{ m?: Manifest; unreadable?: unknown }> {
  try {
    return { m: await retry(() => readManifest(target), POLICY.glance) };
  } catch (e) {
    if (isKind(e, 'integrity')) throw e;
    return { unreadable: e };
  }
}

/** The prefix has no Nix, and the cache to restore one from cannot be read now. */
export function restoreCacheUnreadable(l: Layout, url: string, e: unknown): RelonixError {
  return new RelonixError(`the prefix ${l.prefix} has no Nix, and the cache ${url} to restore it from cannot be read: ${errorMessage(e)}`, {
    kind: 'network',
    hint: 'check that the cache is reachable, then run the same command again',
    cause: e,
  });
}

/** The prefix's Nix; restored from the cache when the prefix has none. */
export async function ensureNix(
  l: Layout,
  o: { cache: string; target: CacheTarget; trustedKeys: string[]; system: string; json: boolean },
): Promise<PrefixNix> {
  const s = await readState(l);
  if (await isBootstrapped(l, s)) return { nix: s.nix!, cacert: s.cacert, restored: false };
  const { m, unreadable } = await manifestOf(o.target);
  if (unreadable) {
    throw restoreCacheUnreadable(l, o.target.url, unreadable);
  }
  if (!m?.nix[o.system] || m.storeDir !== l.storeDir) {
    throw noNix(
      l.prefix,
      `and ${o.target.url} names none for ${o.system} and the store ${l.storeDir} to restore`,
      'once it has one, relonix build publishes that Nix to the cache and restores it from there after every restart',
    );
  }
  // its progress goes to stderr: stdout is for the output paths (or, with --json, every event)
  const r = await runBootstrap({ prefix: l.prefix, caches: [o.cache], trustedKeys: o.trustedKeys, json: o.json, progress: process.stderr });
  return { nix: r.nix, cacert: r.cacert, restored: true };
}

/** What to publish and record, when the cache's manifest does not name this Nix for this system. */
export async function nixMissingFromCache(target: CacheTarget, n: PrefixNix, system: string): Promise<NixRecord | undefined> {
  // a cache that cannot be read now gets the Nix once it can
  const { m } = await manifestOf(target);
  return m?.nix[system]?.path === n.nix ? undefined : { system, nix: n.nix, cacert: n.cacert };
}
