// Publishing store paths to a binary cache. Per path: NAR first, narinfo last — the narinfo is the
// commit marker, so a cache read at any moment (or left behind by a kill) never has a narinfo
// pointing at a missing or partial NAR. A path whose narinfo exists is skipped, which makes
// re-publishing incremental and resuming after a kill simply "run it again".
// What is published is a list of items, each a NAR stream and what to check before it goes up: the
// paths of the local store (publishPaths), or NARs rewritten from another cache (translate).
// A NAR is never held in memory: it streams through hashes and the compressor into a staging file
// (staged-nar.ts), and goes up from that file.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dumpPath, formatNarHash } from '../store/nar/write.ts';
import { toNixBase32 } from '../store/nixbase32.ts';
import { parseNarHashField, type RegInfo } from '../store/reginfo.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { listDir } from '../util/fs.ts';
import { Limit } from '../util/pool.ts';
import { processAlive } from '../util/proc.ts';
import { isTransient, type RetryOptions, retry, stillUnreachable } from '../util/retry.ts';
import { type Compression, type CompressionChoice, narExtension, resolveCompression } from './compress.ts';
import type { Journal } from './journal.ts';
import { type SecretKey, signNarInfo } from './keys.ts';
import { checkCacheInfo, formatCacheInfo, MANIFEST_KEY, type Manifest, readManifest, storeDirMismatch } from './meta.ts';
import { formatNarInfo, type NarInfo, narInfoKey } from './narinfo.ts';
import { readBack } from './readback.ts';
import { type StagedNar, stageNarStream } from './staged-nar.ts';
import type { CacheTarget } from './targets.ts';

/** Where and how to publish: the cache, its store dir, the key, and how hard to try. */
export interface PublishTarget {
  target: CacheTarget;
  storeDir: string;
  key: SecretKey;
  /** default `auto`: zstd when the host has zstd, else xz when it has xz, else none */
  compression?: CompressionChoice;
  /** where NARs are staged between compressing and uploading (default: the OS temporary directory) */
  tmpDir?: string;
  jobs?: number;
  retries?: number;
  minRetryDelayMs?: number;
  log?: (msg: string) => void;
}

export interface PublishOptions extends PublishTarget {
  /** registration records of every path to publish (a closure) */
  paths: RegInfo[];
  /** record this Nix (and CA bundle) for `system` in relonix.json once everything is up */
  record?: { system: string; nix: string; cacert?: string };
}

/** One store object to publish. */
export interface PublishItem {
  /** its path in the cache's store dir */
  path: string;
  /** full store paths */
  references: string[];
  deriver?: string;
  /** bytes of its NAR, for the order (biggest first) */
  size: number;
  /** what its NAR is made from (a hash of it): the journal keeps work only for the same source */
  source: string;
  /** its NAR, opened when its turn comes */
  nar(): AsyncIterable<Uint8Array>;
  /** the NAR's sha256 and size once nar() has been read to its end, where what makes it hashes it already (a rewrite): not hashed twice */
  hashed?(): { hash: Buffer; size: number } | undefined;
  /** looks at the staged NAR before anything goes up: throws to refuse it, may name its content address */
  accept(staged: StagedNar): Promise<{ ca?: string }> | { ca?: string };
}

export interface ItemsOptions extends PublishTarget {
  /**
   * `each` (default): a narinfo as soon as its NAR and its references' narinfos are up. `end`: no
   * narinfo until every NAR is up, so an item refused half-way leaves nothing published.
   */
  commit?: 'each' | 'end';
  /** with `end`: what a killed run uploaded but did not commit, so a re-run does not do it again */
  journal?: Journal;
}

export interface PublishResult {
  uploaded: number;
  skipped: number;
  narBytes: number;
  compression: Compression;
  /** the paths whose narinfos this run wrote */
  published: string[];
}

type Again = <T>(fn: () => Promise<T>) => Promise<T>;

/** The (unsigned) narinfo of an item whose NAR is staged: the NAR's key is `nar/<FileHash>.nar[.ext]`. */
export function stagedNarInfo(it: Pick<PublishItem, 'path' | 'references' | 'deriver'>, staged: StagedNar, compression: Compression, ca?: string): NarInfo {
  return {
    storePath: it.path,
    url: `nar/${toNixBase32(staged.fileHash)}${narExtension(compression)}`,
    compression,
    fileHash: formatNarHash(staged.fileHash),
    fileSize: staged.fileSize,
    narHash: formatNarHash(staged.narHash),
    narSize: staged.narSize,
    references: it.references.map((r) => path.basename(r)).sort(),
    deriver: it.deriver ? path.basename(it.deriver) : undefined,
    sigs: [],
    ...(ca ? { ca } : {}),
  };
}

/** Stages one item's NAR and uploads it; undefined when the cache has the path already. The narinfo is not signed yet. */
async function uploadNar(o: ItemsOptions, it: PublishItem, compression: Compression, file: string, again: Again): Promise<NarInfo | undefined> {
  if (await again(() => o.target.has(narInfoKey(it.path)))) return undefined;
  const journaled = await o.journal?.get(it.path, it.source);
  if (journaled && (await again(() => o.target.has(journaled.url)))) return journaled;
  const staged = await stageNarStream(it.nar(), compression, file, it.hashed?.bind(it));
  const ni = stagedNarInfo(it, staged, compression, (await it.accept(staged)).ca);
  const narKey = ni.url;
  if (!(await again(() => o.target.has(narKey)))) {
    // each attempt reads the staged file afresh
    await again(() => o.target.putFile(narKey, file, staged.fileSize, staged.fileHash.toString('hex'), 'application/x-nix-nar'));
  }
  await o.journal?.put(it.source, ni);
  return ni;
}

/** The closure of `roots` among `paths` (which hold it), sorted. */
function closureOf(roots: string[], paths: RegInfo[]): string[] {
  const refs = new Map(paths.map((p) => [p.path, p.references]));
  const seen = new Set<string>(roots);
  const todo = [...seen];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    for (const r of refs.get(p) ?? []) {
      if (!seen.has(r)) {
        seen.add(r);
        todo.push(r);
      }
    }
  }
  return [...seen].sort();
}

/** Records the Nix in relonix.json; last, as it must only ever name a Nix whose closure is in the cache. */
async function recordNix(o: PublishOptions, rec: NonNullable<PublishOptions['record']>): Promise<void> {
  const m: Manifest = (await readManifest(o.target)) ?? { version: 1, storeDir: o.storeDir, nix: {} };
  if (m.storeDir !== o.storeDir) throw storeDirMismatch(o.target.url, m.storeDir, o.storeDir);
  const closure = closureOf([rec.nix, ...(rec.cacert ? [rec.cacert] : [])], o.paths).map((p) => path.basename(p));
  m.nix[rec.system] = { path: rec.nix, cacert: rec.cacert, publishedAt: new Date().toISOString(), closure };
  await o.target.put(MANIFEST_KEY, Buffer.from(`${JSON.stringify(m, null, 2)}\n`), 'application/json');
}

/** A path of the local store, checked against its registration before it goes up. */
export function localItem(p: RegInfo): PublishItem {
  return {
    path: p.path,
    references: p.references,
    deriver: p.deriver || undefined,
    size: p.narSize,
    source: p.narHash,
    nar: () => dumpPath(p.path),
    accept: (staged) => {
      if (!parseNarHashField(p.narHash).equals(staged.narHash) || staged.narSize !== p.narSize) {
        throw changedSinceRegistered(p.path);
      }
      return {};
    },
  };
}

export async function publishPaths(o: PublishOptions): Promise<PublishResult> {
  const again: Again = (fn) => retry(fn, o satisfies RetryOptions);
  const r = await publishItems(o, o.paths.map(localItem));
  if (o.record) {
    const rec = o.record;
    // the whole closure, what this run skipped as well: relonix.json must never name a hole
    const limit = new Limit(o.jobs ?? 4);
    await guard(o, () => settleAll(o.paths.map((p) => limit.run(() => again(() => readBack(o.target, p.path))))));
    await guard(o, () => again(() => recordNix(o, rec)));
  }
  return r;
}

/** Publishes items (see ItemsOptions for when narinfos are written). */
export async function publishItems(o: ItemsOptions, items: PublishItem[]): Promise<PublishResult> {
  return guard(o, () => publishAll(o, items));
}

async function guard<T>(o: PublishTarget, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof RelonixError) throw e;
    throw isTransient(e) ? stillUnreachable(`publishing to ${o.target.url} failed`, e, PUBLISH_AGAIN) : publishFailed(o.target.url, e);
  }
}

async function publishAll(o: ItemsOptions, items: PublishItem[]): Promise<PublishResult> {
  const log = o.log ?? (() => undefined);
  const compression = await resolveCompression(o.compression ?? 'auto', log);
  const again: Again = (fn) => retry(fn, o satisfies RetryOptions);

  const info = await again(() => checkCacheInfo(o.target, o.storeDir));
  if (!info) await again(() => o.target.put('nix-cache-info', Buffer.from(formatCacheInfo({ storeDir: o.storeDir })), 'text/x-nix-cache-info'));
  for (const it of items) {
    if (path.dirname(it.path) !== o.storeDir) throw notInStore(it.path, o.storeDir);
  }
  // at most `jobs` paths are hashed, compressed and uploaded at once
  const limit = new Limit(o.jobs ?? 4);
  // NARs go up in any order, biggest first
  const ordered = [...items].sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));

  // staged NARs live here until they are uploaded; the directory goes when publish ends, however it
  // ends, and what a killed publish left is cleared by the next one
  const tmpDir = o.tmpDir ?? os.tmpdir();
  await clearAbandonedStaging(tmpDir);
  const staging = await fs.mkdtemp(path.join(tmpDir, `${STAGING_PREFIX}${process.pid}-`));
  const upload = (it: PublishItem) => {
    const file = path.join(staging, `${path.basename(it.path)}${narExtension(compression)}`);
    return limit.run(() => uploadNar(o, it, compression, file, again).finally(() => fs.rm(file, { force: true })));
  };
  try {
    if (o.commit !== 'end') return await commitInOrder(o, ordered, upload, { limit, again, compression });
    const uploaded = await settleAll(ordered.map(upload));
    const ready = new Map(ordered.map((it, i) => [it, uploaded[i]]));
    return await commitInOrder(o, ordered, async (it) => ready.get(it), { limit, again, compression });
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/** Every promise settled; the first failure thrown, else the values. */
async function settleAll<T>(ps: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(ps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/**
 * Writes each item's narinfo once it is `ready` (its NAR up) and the narinfos of its references
 * are written, so a cache never names a path it cannot serve.
 */
async function commitInOrder(
  o: ItemsOptions,
  items: PublishItem[],
  ready: (it: PublishItem) => Promise<NarInfo | undefined>,
  c: { limit: Limit; again: Again; compression: Compression },
): Promise<PublishResult> {
  const result: PublishResult = { uploaded: 0, skipped: 0, narBytes: 0, compression: c.compression, published: [] };
  const done = new Map<string, Promise<void>>();
  const one = async (it: PublishItem): Promise<void> => {
    const ni = await ready(it);
    if (!ni) {
      result.skipped++;
      return;
    }
    await Promise.all(it.references.filter((r) => r !== it.path).map((r) => done.get(r)));
    const signed = { ...ni, sigs: [signNarInfo(ni, o.key)] };
    await c.limit.run(async () => {
      await c.again(() => o.target.put(narInfoKey(it.path), Buffer.from(formatNarInfo(signed)), 'text/x-nix-narinfo'));
      await c.again(() => readBack(o.target, it.path, signed));
    });
    await o.journal?.drop(it.path);
    result.uploaded++;
    result.narBytes += ni.fileSize!;
    result.published.push(it.path);
    o.log?.(`published ${path.basename(it.path)} (${ni.fileSize} bytes)`);
  };
  // every promise is in `done` before the first narinfo looks for its references' (each awaits first)
  for (const it of items) {
    const pr = one(it);
    pr.catch(() => undefined);
    done.set(it.path, pr);
  }
  await settleAll([...done.values()]);
  return result;
}

const STAGING_PREFIX = 'relonix-publish-';

/**
 * Removes staging directories whose publish process is gone (killed with SIGKILL, say). Only those
 * untouched for a few minutes: a pid that is not running here may still be a publish in another
 * pid namespace that shares this directory.
 */
async function clearAbandonedStaging(dir: string): Promise<void> {
  for (const n of await listDir(dir)) {
    const m = /^relonix-publish-(\d+)-/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    if (processAlive(pid)) continue; // still running (or not ours to signal): leave it
    const st = await fs.stat(path.join(dir, n)).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < 5 * 60_000) continue;
    await fs.rm(path.join(dir, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

const PUBLISH_AGAIN = 'run the same command again: what is already in the cache is skipped';

/** A publish that failed for a reason no layer below worded (not the network: that is stillUnreachable). */
export function publishFailed(url: string, cause: unknown): RelonixError {
  return new RelonixError(`publishing to ${url} failed: ${errorMessage(cause)}`, { kind: 'failure', hint: PUBLISH_AGAIN, cause });
}

/** A store path whose bytes on disk no longer hash to what the database registered. */
export function changedSinceRegistered(storePath: string): RelonixError {
  return new RelonixError(`${storePath} no longer matches its registration (NAR hash or size changed on disk)`, {
    kind: 'integrity',
    hint: `repair it with nix-store --verify --check-contents --repair, then publish again`,
  });
}

/** A path to publish that is not directly in the store dir the cache is for. */
export function notInStore(p: string, storeDir: string): RelonixError {
  return new RelonixError(`${p} is not in the store ${storeDir}`, {
    kind: 'usage',
    hint: `name store paths of this prefix's store (${storeDir}/HASH-NAME); nix-store --query --requisites lists a closure`,
  });
}
