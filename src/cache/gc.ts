// Garbage collection of a cache: keep the closure of the roots (gc-plan.ts decides, from a listing),
// remove every other narinfo and every NAR no kept narinfo points at, leaving alone whatever is
// younger than the grace period. relonix.json loses an entry first (only when asked: --drop-nix),
// then narinfos go, then NARs, so the cache never names a path it cannot serve, even if gc is
// stopped halfway.

import { promises as fs } from 'node:fs';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { mib } from '../util/format.ts';
import { retry, spent } from '../util/retry.ts';
import { type GcPlan, narInfoKeys, planGc } from './gc-plan.ts';
import { MANIFEST_KEY, parseCacheInfo, readManifest } from './meta.ts';
import { type NarInfo, readCachedNarInfo } from './narinfo.ts';
import type { CacheTarget } from './target.ts';

export type GcResult = GcPlan;

export interface GcOptions {
  /** the store paths to keep, and the file they came from (for messages) */
  keep: string[];
  keepFile: string;
  dryRun?: boolean;
  /** never remove an object younger than this (default an hour) */
  graceSeconds?: number;
  /** remove these systems' Nix from relonix.json, and so from the roots */
  dropNix?: string[];
  /** remove even when that is more than half the cache's paths */
  yes?: boolean;
  log?: (m: string) => void;
}

export const DEFAULT_GRACE_SECONDS = 3600;

export async function gcCache(t: CacheTarget, o: GcOptions): Promise<GcResult> {
  try {
    return await collect(t, o);
  } catch (e) {
    throw spent(e, `cache gc of ${t.url} failed`, 'run it again: what is gone stays gone, and nothing a kept path needs is removed');
  }
}

/** A gc that would remove more than half the cache, refused without --yes: the summary says what. */
export function gcRemovesMost(url: string, p: GcPlan): RelonixError {
  return new RelonixError(`gc would remove ${summary(p)} of ${url}: more than half of it; nothing was removed`, {
    kind: 'usage',
    hint: 'check the keep file (--dry-run lists every object that would go), then run again with --yes to remove them',
  });
}

/** Whether a plan removes more than half of the cache's paths: what needs --yes. */
export function removesMost(p: GcPlan): boolean {
  return p.removedNarInfos.length * 2 > p.narInfoCount;
}

/** What a plan removes, in a few words: `12 of 20 paths (12 narinfos, 11 NARs, 3.1 MiB)`. */
export function summary(p: GcPlan): string {
  return `${p.removedNarInfos.length} of ${p.narInfoCount} paths (${p.removedNarInfos.length} narinfos, ${p.removedNars.length} NARs, ${mib(p.removedBytes)})`;
}

async function collect(t: CacheTarget, o: GcOptions): Promise<GcResult> {
  if (!t.list) throw cacheNotListable(t.url);
  const objects = await retry(() => t.list!());
  const infos = new Map<string, NarInfo>();
  for (const k of narInfoKeys(objects)) {
    const b = await retry(() => t.get(k));
    if (b) infos.set(k, readCachedNarInfo(b, `${t.url}/${k}`));
  }
  const info = await retry(() => t.get('nix-cache-info'));
  const storeDir = info ? parseCacheInfo(info.toString('utf8'), t.url).storeDir : undefined;
  const manifest = await retry(() => readManifest(t));
  const plan = planGc({
    objects,
    infos,
    storeDir,
    keep: o.keep,
    keepFile: o.keepFile,
    manifest,
    dropNix: o.dropNix ?? [],
    graceSeconds: o.graceSeconds ?? DEFAULT_GRACE_SECONDS,
    now: Date.now(),
    url: t.url,
  });
  if (o.dryRun) return plan;
  if (removesMost(plan) && !o.yes) throw gcRemovesMost(t.url, plan);
  if (manifest && plan.droppedNix.length) {
    for (const sys of plan.droppedNix) delete manifest.nix[sys];
    o.log?.(`removing the Nix for ${plan.droppedNix.join(', ')} from ${MANIFEST_KEY}`);
    await retry(() => t.put(MANIFEST_KEY, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), 'application/json'));
  }
  for (const k of plan.removedNarInfos) await retry(() => t.delete(k));
  for (const k of plan.removedNars) await retry(() => t.delete(k));
  return plan;
}

/** The store paths a keep file lists, one a line; blank lines and `#` comments are skipped. */
export async function readKeepFile(file: string): Promise<string[]> {
  let text: string;
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) throw keepFileUnreadable(file, 'it is not a regular file');
    if (st.size > 64 << 20) throw keepFileUnreadable(file, `it holds ${st.size} bytes, more than any list of store paths`);
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw e instanceof RelonixError ? e : keepFileUnreadable(file, errorMessage(e));
  }
  return text
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && !s.startsWith('#'));
}

/** A cache that cannot list its objects (plain HTTP): gc cannot know what nothing names. */
export function cacheNotListable(url: string): RelonixError {
  return new RelonixError(`${url} cannot be listed, so relonix cannot tell what to remove`, {
    kind: 'usage',
    hint: 'run gc against the file:// directory or the s3:// bucket behind the cache',
  });
}

/** A --keep file that cannot be read, or that is no list of store paths. */
export function keepFileUnreadable(file: string, why: string): RelonixError {
  return new RelonixError(`cannot read the keep file ${file}: ${why}`, { kind: 'usage', hint: 'write the store paths to keep into it, one a line' });
}
