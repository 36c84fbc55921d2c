// Restoring a Nix closure from a binary cache into a prefix, and the cache-nix stage (the relocated Nix
// realising a Nix built for the prefix). Every narinfo must carry a signature by a trusted key; every
// NAR is checked (FileHash, NarHash, NarSize) while it is unpacked into a temporary directory inside
// the store, and renamed into place only when it checks out. The database learns of the paths only
// once all of them are in place, so a failed or killed restore registers nothing; a re-run skips the
// paths already present and intact.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Layout } from '../prefix/layout.ts';
import { resolveNixTool, runNix, runNixStore } from '../prefix/tools.ts';
import { narDigest } from '../store/nar/write.ts';
import { formatRegInfo, parseNarHashField } from '../store/reginfo.ts';
import { parseStoreBasename } from '../store/storepath.ts';
import { type ErrorKind, errorMessage, isKind, RelonixError } from '../util/errors.ts';
import { clearTemps, exists, removeTree } from '../util/fs.ts';
import { pool } from '../util/pool.ts';
import type { StepProgress } from '../util/progress.ts';
import { POLICY, retry, spent } from '../util/retry.ts';
import { closureNarInfos } from './closure.ts';
import { hostDecompressor } from './compress.ts';
import { type PublicKey, parsePublicKey } from './keys.ts';
import { checkCacheInfo, expectedClosure, type ManifestEntry, readManifest, STORE_DIR_HINT, storeDirMismatch } from './meta.ts';
import type { NarInfo } from './narinfo.ts';
import { fileBytes, type Item, restoreFiles, restoreOne, restoreRun } from './restore-nar.ts';
import { type CacheTarget, openTarget, type TargetOptions } from './targets.ts';

export interface RestoreOptions {
  layout: Layout;
  caches: string[];
  trustedKeys: string[];
  system: string;
  onProgress?: (p: StepProgress) => void;
  /** nix-store to register with when the restored Nix has none (tests with a host Nix) */
  nixStore?: string;
  targetOptions?: TargetOptions;
  jobs?: number;
  /**
   * Work of the caller's that needs the restored paths in place but not in the database (the
   * restore stage writes the wrappers that name the restored Nix): run beside the registration,
   * each waiting on its own files, and both finished before the restore returns
   */
  besideRegistration?: () => Promise<void>;
}

interface Found {
  target: CacheTarget;
  entry: ManifestEntry;
}

/**
 * The first cache whose manifest names a Nix for `system` and this store dir. A cache for another
 * store dir is the caller's mistake (usage), as everywhere; one that could not be read is network.
 */
export async function findNixInCaches(caches: string[], storeDir: string, system: string, topts?: TargetOptions): Promise<Found | undefined> {
  const problems: { text: string; kind: ErrorKind }[] = [];
  for (const url of caches) {
    const target = openTarget(url, topts);
    let m;
    try {
      m = await retry(() => readManifest(target), POLICY.probe);
    } catch (e) {
      if (isKind(e, 'integrity')) throw e;
      problems.push({ text: `${url}: ${errorMessage(e)}`, kind: e instanceof RelonixError ? e.kind : 'network' });
      continue;
    }
    if (!m) continue;
    if (m.storeDir !== storeDir) {
      problems.push({ text: storeDirMismatch(url, m.storeDir, storeDir).message, kind: 'usage' });
      continue;
    }
    const entry = m.nix[system];
    if (entry) return { target, entry };
  }
  if (problems.length) throw noUsableCache(system, storeDir, problems);
  return undefined;
}

function trusted(keys: string[]): PublicKey[] {
  if (keys.length === 0) {
    throw noTrustedKey();
  }
  return keys.map(parsePublicKey);
}

/**
 * A cache's nix-cache-info read and checked to serve `storeDir` (with retries). Its failure is said
 * when the promise is awaited, not before: a refusal found earlier (the manifest's) goes first.
 */
function cacheInfoChecked(t: CacheTarget, storeDir: string): Promise<unknown> {
  const c = retry(() => checkCacheInfo(t, storeDir), POLICY.probe);
  c.catch(() => undefined);
  return c;
}

/** Whether the path is already in the store, intact; a damaged one is removed. */
async function present(ni: NarInfo): Promise<boolean> {
  if (!(await exists(ni.storePath))) return false;
  // a path is only ever renamed into place after it checked out; re-hash anyway, cheap next to a download
  const d = await narDigest(ni.storePath).catch(() => undefined);
  if (d?.hash.equals(parseNarHashField(ni.narHash)) && d.size === ni.narSize) return true;
  await removeTree(ni.storePath);
  return false;
}

/**
 * Decompressor runs at once: one per core, and two at least (one's output is written while the
 * other's program decodes), four at most (each holds a program and a download).
 */
function defaultJobs(): number {
  return Math.min(4, Math.max(2, os.availableParallelism()));
}

/** `items` (largest first) in `n` shares of about the same compressed size, each still largest first. */
export function lanes(items: Item[], n: number): Item[][] {
  const out = Array.from({ length: n }, () => ({ items: [] as Item[], bytes: 0 }));
  for (const it of items) {
    const lightest = out.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    lightest.items.push(it);
    lightest.bytes += fileBytes(it);
  }
  return out.map((o) => o.items).filter((q) => q.length);
}

/** Puts every path of `all` in place that is not already: many per decompressor when the host has one. */
async function restorePaths(o: RestoreOptions, all: Item[]): Promise<void> {
  const l = o.layout;
  const total = all.length;
  let doneCount = 0;
  const onDone = ({ ni }: Item, how: 'present' | 'restored') => {
    doneCount++;
    o.onProgress?.({ message: `${how} ${path.basename(ni.storePath)}`, done: doneCount, total });
  };
  // what a killed run already put in place stays; checking it reads it, so that is done once, here
  const here = await Promise.all(all.map(({ ni }) => present(ni)));
  for (const [i, it] of all.entries()) if (here[i]) onDone(it, 'present');
  const queue = all.filter((_, i) => !here[i]);
  const restored = (it: Item) => onDone(it, 'restored');
  const compressions = new Set(all.map(({ ni }) => ni.compression));
  const jobs = Math.max(1, Math.min(o.jobs ?? defaultJobs(), queue.length));
  if (compressions.size === 1 && !compressions.has('none')) {
    // each worker is one run of the decompressor (the host's program, or the built-in decoder on a
    // thread), taking paths from the shared queue as it goes; from a directory cache, the host's
    // program reads a share of the files, fixed up front, itself
    const c = [...compressions][0]!;
    const run = (q: Item[]) => retry(() => restoreRun(l, q, c, restored), POLICY.narRun);
    const bin = hostDecompressor(c);
    if (bin && queue.every(({ target }) => target.localFile)) {
      await pool(lanes(queue, jobs), jobs, async (lane) => {
        if (!(await retry(() => restoreFiles(lane, bin, restored), POLICY.narRun))) await run(lane);
      });
    } else await pool(Array.from({ length: jobs }), jobs, () => run(queue));
  } else {
    await pool(queue, jobs, async (item) => {
      await retry(() => restoreOne(l, item), POLICY.nar);
      restored(item);
    });
  }
}

interface ClosureOptions {
  roots: string[];
  /** each cache's nix-cache-info checked (cacheInfoChecked), begun earlier; by default, checked here */
  cacheInfos?: Promise<unknown>[];
  /** what the closure is said to hold (a manifest's list): their narinfos are asked for at once */
  expected?: string[];
  nix?: string;
  targets?: CacheTarget[];
}

/** Restores store paths (with their closures) from caches, then registers them all at once. */
export async function restoreClosure(o: RestoreOptions & ClosureOptions): Promise<string[]> {
  try {
    return await restoreAndRegister(o);
  } catch (e) {
    throw spent(
      e,
      `restoring from ${o.caches.join(', ') || 'the cache'} failed`,
      'check that the cache is reachable, then run again: what is already in place is kept',
    );
  }
}

async function restoreAndRegister(o: RestoreOptions & ClosureOptions): Promise<string[]> {
  const l = o.layout;
  const keys = trusted(o.trustedKeys);
  const targets = o.targets ?? o.caches.map((u) => openTarget(u, o.targetOptions));
  for (const c of o.cacheInfos ?? targets.map((t) => cacheInfoChecked(t, l.storeDir))) await c;
  for (const r of o.roots) parseStoreBasename(path.basename(r));
  o.onProgress?.({ message: 'reading narinfos' });
  const infos = await closureNarInfos(targets, o.roots, keys, l.storeDir, undefined, o.expected);
  await fs.mkdir(l.storeDir, { recursive: true });
  // what a killed restore was unpacking never got its real name; the caller holds the prefix lock,
  // so no other restore is unpacking now
  await clearTemps(l.storeDir);
  // largest first: the biggest NAR decides when the last worker finishes
  const all = [...infos.values()].sort((a, b) => (b.ni.fileSize ?? b.ni.narSize) - (a.ni.fileSize ?? a.ni.narSize));
  await restorePaths(o, all);

  const records = all
    .map(({ ni }) => ({
      path: ni.storePath,
      narHash: ni.narHash,
      narSize: ni.narSize,
      deriver: ni.deriver ? `${l.storeDir}/${ni.deriver}` : '',
      references: [...ni.references].sort().map((r) => `${l.storeDir}/${r}`),
    }))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  o.onProgress?.({ message: `registering ${records.length} paths` });
  const register = () => runNixStore({ layout: l, nix: o.nix, nixStore: o.nixStore }, ['--load-db'], formatRegInfo(records));
  await pool([register, o.besideRegistration ?? (async () => undefined)], 2, async (f) => void (await f()));
  // partial downloads are kept between runs so they resume; once everything is in, none is needed
  await removeTree(path.join(l.downloadsDir, 'nar'));
  return records.map((r) => r.path);
}

export async function restoreFromCache(
  opts: Omit<RestoreOptions, 'besideRegistration'> & {
    /** besideRegistration, told the Nix and CA bundle the manifest names */
    besideRegistration?: (nix: string, cacert?: string) => Promise<void>;
  },
): Promise<{ nix: string; cacert?: string; paths: string[] }> {
  const l = opts.layout;
  // each cache's nix-cache-info asked for beside its relonix.json: over a network, a round trip less
  const cacheInfos = opts.caches.map((u) => cacheInfoChecked(openTarget(u, opts.targetOptions), l.storeDir));
  const found = await findNixInCaches(opts.caches, l.storeDir, opts.system, opts.targetOptions);
  if (!found) {
    throw noNixInCaches(opts.caches, opts.system, l.storeDir);
  }
  const { entry, target } = found;
  opts.onProgress?.({ message: `restoring ${entry.path} from ${target.url}` });
  const others = opts.caches.filter((u) => u !== target.url).map((u) => openTarget(u, opts.targetOptions));
  const roots = [entry.path, ...(entry.cacert ? [entry.cacert] : [])];
  const { besideRegistration: beside, ...rest } = opts;
  const besideRegistration = beside && (() => beside(entry.path, entry.cacert));
  const expected = expectedClosure(entry, l.storeDir);
  const paths = await restoreClosure({ ...rest, roots, expected, cacheInfos, nix: entry.path, targets: [target, ...others], besideRegistration });
  return { nix: entry.path, cacert: entry.cacert, paths };
}

export async function realiseNixFromCache(
  opts: Pick<RestoreOptions, 'layout' | 'caches' | 'trustedKeys' | 'system' | 'targetOptions'> & {
    /** the relocated Nix that does the realising */
    nix: string;
    env: NodeJS.ProcessEnv;
  },
): Promise<{ nix: string } | null> {
  const found = await findNixInCaches(opts.caches, opts.layout.storeDir, opts.system, opts.targetOptions);
  if (!found) return null;
  trusted(opts.trustedKeys);
  const nixStore = await resolveNixTool({ layout: opts.layout, nix: opts.nix }, 'nix-store');
  const args = [
    '--realise',
    found.entry.path,
    '--option',
    'substituters',
    opts.caches.join(' '),
    '--option',
    'trusted-public-keys',
    opts.trustedKeys.join(' '),
    '--option',
    'require-sigs',
    'true',
    '--option',
    'narinfo-cache-negative-ttl',
    '0',
  ];
  try {
    await runNix(nixStore, args, { env: opts.env, hint: 'check the cache URL and --trusted-key; `relonix publish` fills the cache' });
  } catch (e) {
    throw nixNotRealised(found.entry.path, opts.caches, e);
  }
  return { nix: found.entry.path };
}

/** Every cache asked for a Nix failed: all serve another store (usage), or one could not be read (network). */
export function noUsableCache(system: string, storeDir: string, problems: { text: string; kind: ErrorKind }[]): RelonixError {
  const kind = problems.every((p) => p.kind === 'usage') ? 'usage' : 'network';
  return new RelonixError(`no usable cache names a Nix for ${system} and ${storeDir}: ${problems.map((p) => p.text).join('; ')}`, {
    kind,
    hint: kind === 'usage' ? STORE_DIR_HINT : 'check that the cache is reachable, then run again',
  });
}

/** A restore with no --trusted-key: nothing from the cache could be trusted. */
export function noTrustedKey(): RelonixError {
  return new RelonixError('restoring from a cache needs at least one trusted public key', {
    kind: 'usage',
    hint: 'pass --trusted-key NAME:BASE64 (the content of the NAME.public file the cache was signed with)',
  });
}

/** No cache given records a Nix for this system and store dir (relonix.json). */
export function noNixInCaches(caches: string[], system: string, storeDir: string): RelonixError {
  return new RelonixError(`none of the caches (${caches.join(', ')}) names a Nix for ${system} and the store ${storeDir}`, {
    kind: 'usage',
    hint: 'publish one with `relonix publish --to URL --secret-key FILE` from a prefix with the same store dir, or bootstrap from the tarball',
  });
}

/** The relocated Nix could not substitute the cache's Nix into the store. */
export function nixNotRealised(nix: string, caches: string[], cause: unknown): RelonixError {
  return new RelonixError(`the relocated Nix could not realise ${nix} from ${caches.join(', ')}: ${errorMessage(cause)}`, {
    kind: 'network',
    hint: 'check the cache URL and --trusted-key; `relonix publish` fills the cache',
    cause,
  });
}
