// Publishing store paths to a binary cache. Per path: NAR first, narinfo last — the narinfo is the
// commit marker, so a cache read at any moment (or left behind by a kill) never has a narinfo
// pointing at a missing or partial NAR. A path whose narinfo exists is skipped, which makes
// re-publishing incremental and resuming after a kill simply "run it again".
// A NAR is never held in memory: it streams from the store through a hash, the compressor and a
// second hash into a staging file, and goes up from that file.
import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { dumpPath, formatNarHash } from '../store/nar/write.ts';
import { createHash, type Hash } from 'node:crypto';
import { parseNarHashField, type RegInfo } from '../store/reginfo.ts';
import { toNixBase32 } from '../store/nixbase32.ts';
import { RelonixError, errorMessage } from '../util/errors.ts';
import { listDir } from '../util/fs.ts';
import { Limit } from '../util/pool.ts';
import { processAlive } from '../util/proc.ts';
import { isTransient, retry, type RetryOptions } from '../util/retry.ts';
import { formatNarInfo, narInfoKey, type NarInfo } from './narinfo.ts';
import { signNarInfo, type SecretKey } from './keys.ts';
import { compressStream, narExtension, resolveCompression, type Compression, type CompressionChoice } from './compress.ts';
import type { CacheTarget } from './targets.ts';
import { checkCacheInfo, formatCacheInfo, readManifest, MANIFEST_KEY, type Manifest } from './meta.ts';

export interface PublishOptions {
  target: CacheTarget;
  storeDir: string;
  /** registration records of every path to publish (a closure) */
  paths: RegInfo[];
  key: SecretKey;
  /** default `auto`: zstd when the host has zstd, else xz when it has xz, else none */
  compression?: CompressionChoice;
  /** where NARs are staged between compressing and uploading (default: the OS temporary directory) */
  tmpDir?: string;
  jobs?: number;
  /** record this Nix (and CA bundle) for `system` in relonix.json once everything is up */
  record?: { system: string; nix: string; cacert?: string };
  retries?: number;
  minRetryDelayMs?: number;
  log?: (msg: string) => void;
}

export interface PublishResult {
  uploaded: number;
  skipped: number;
  narBytes: number;
  compression: Compression;
}

type Again = <T>(fn: () => Promise<T>) => Promise<T>;

/** Stages one path's NAR and uploads it; undefined when the cache has the path already. */
async function uploadNar(o: PublishOptions, p: RegInfo, compression: Compression, file: string, again: Again): Promise<NarInfo | undefined> {
  if (await again(() => o.target.has(narInfoKey(p.path)))) return undefined;
  const staged = await stageNar(p.path, compression, file);
  const registered = parseNarHashField(p.narHash);
  if (!registered.equals(staged.narHash) || staged.narSize !== p.narSize) {
    throw new RelonixError(`${p.path} no longer matches its registration (NAR hash or size changed on disk)`, {
      kind: 'integrity',
      hint: `repair it with nix-store --verify --check-contents --repair, then publish again`,
    });
  }
  const narKey = `nar/${toNixBase32(staged.fileHash)}${narExtension(compression)}`;
  const ni: NarInfo = {
    storePath: p.path,
    url: narKey,
    compression,
    fileHash: formatNarHash(staged.fileHash),
    fileSize: staged.fileSize,
    narHash: formatNarHash(staged.narHash),
    narSize: staged.narSize,
    references: p.references.map((r) => path.basename(r)).sort(),
    deriver: p.deriver ? path.basename(p.deriver) : undefined,
    sigs: [],
  };
  ni.sigs.push(signNarInfo(ni, o.key));
  if (!(await again(() => o.target.has(narKey)))) {
    // each attempt reads the staged file afresh
    await again(() => o.target.putFile(narKey, file, staged.fileSize, staged.fileHash.toString('hex'), 'application/x-nix-nar'));
  }
  return ni;
}

/** Records the Nix in relonix.json; last, as it must only ever name a Nix whose closure is in the cache. */
async function recordNix(o: PublishOptions, rec: NonNullable<PublishOptions['record']>): Promise<void> {
  const m: Manifest = (await readManifest(o.target)) ?? { version: 1, storeDir: o.storeDir, nix: {} };
  if (m.storeDir !== o.storeDir) throw new RelonixError(`${o.target.url}/${MANIFEST_KEY} is for the store ${m.storeDir}, not ${o.storeDir}`, { kind: 'usage' });
  m.nix[rec.system] = { path: rec.nix, cacert: rec.cacert, publishedAt: new Date().toISOString() };
  await o.target.put(MANIFEST_KEY, Buffer.from(JSON.stringify(m, null, 2) + '\n'), 'application/json');
}

export async function publishPaths(o: PublishOptions): Promise<PublishResult> {
  try {
    return await publishAll(o);
  } catch (e) {
    if (e instanceof RelonixError) throw e;
    throw new RelonixError(`publishing to ${o.target.url} failed: ${errorMessage(e)}`, {
      kind: isTransient(e) ? 'network' : 'failure',
      hint: 'run the same command again: what is already in the cache is skipped',
      cause: e,
    });
  }
}

async function publishAll(o: PublishOptions): Promise<PublishResult> {
  const log = o.log ?? (() => undefined);
  const compression = resolveCompression(o.compression ?? 'auto', log);
  const again: Again = (fn) => retry(fn, o satisfies RetryOptions);

  const info = await again(() => checkCacheInfo(o.target, o.storeDir));
  if (!info) await again(() => o.target.put('nix-cache-info', Buffer.from(formatCacheInfo({ storeDir: o.storeDir })), 'text/x-nix-cache-info'));
  for (const p of o.paths) {
    if (path.dirname(p.path) !== o.storeDir) throw new RelonixError(`${p.path} is not in the store ${o.storeDir}`, { kind: 'usage' });
  }
  const done = new Map<string, Promise<void>>();
  const result: PublishResult = { uploaded: 0, skipped: 0, narBytes: 0, compression };
  // at most `jobs` paths are hashed, compressed and uploaded at once
  const limit = new Limit(o.jobs ?? 4);

  // staged NARs live here until they are uploaded; the directory goes when publish ends, however it
  // ends, and what a killed publish left is cleared by the next one
  const tmpDir = o.tmpDir ?? os.tmpdir();
  await clearAbandonedStaging(tmpDir);
  const staging = await fs.mkdtemp(path.join(tmpDir, `${STAGING_PREFIX}${process.pid}-`));

  const one = async (p: RegInfo): Promise<void> => {
    const file = path.join(staging, `${path.basename(p.path)}${narExtension(compression)}`);
    const ni = await limit.run(() => uploadNar(o, p, compression, file, again).finally(() => fs.rm(file, { force: true })));
    if (!ni) {
      result.skipped++;
      return;
    }
    // NARs go up in any order, biggest first; the narinfo, the commit marker, waits for the narinfos
    // of its references, so a cache never names a path it cannot serve
    await Promise.all(p.references.filter((r) => r !== p.path).map((r) => done.get(r)));
    await again(() => o.target.put(narInfoKey(p.path), Buffer.from(formatNarInfo(ni)), 'text/x-nix-narinfo'));
    result.uploaded++;
    result.narBytes += ni.fileSize!;
    log(`published ${path.basename(p.path)} (${ni.fileSize} bytes)`);
  };

  let results: PromiseSettledResult<void>[];
  try {
    // every promise is in `done` before the first narinfo looks for its references'
    for (const p of [...o.paths].sort((a, b) => b.narSize - a.narSize || (a.path < b.path ? -1 : 1))) {
      const pr = one(p);
      pr.catch(() => undefined);
      done.set(p.path, pr);
    }
    results = await Promise.allSettled(done.values());
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (o.record) {
    const rec = o.record;
    await again(() => recordNix(o, rec));
  }
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

interface StagedNar {
  narHash: Buffer;
  narSize: number;
  fileHash: Buffer;
  fileSize: number;
}

/**
 * NAR of a store path → sha256 (NarHash, NarSize) → compressor → sha256 (FileHash, FileSize) → file.
 * Memory stays at a few pipe buffers whatever the size of the path. The file is removed on failure.
 */
export async function stageNar(storePath: string, compression: Compression, file: string): Promise<StagedNar> {
  const nar = createHash('sha256');
  const compressed = createHash('sha256');
  const narSize = { n: 0 };
  const fileSize = { n: 0 };
  try {
    const raw = tap(coalesce(dumpPath(storePath), 1 << 16), nar, narSize);
    await pipeline(Readable.from(tap(compressStream(raw, compression), compressed, fileSize)), createWriteStream(file, { flags: 'wx' }));
  } catch (e) {
    await fs.rm(file, { force: true });
    throw e;
  }
  return { narHash: nar.digest(), narSize: narSize.n, fileHash: compressed.digest(), fileSize: fileSize.n };
}

async function* tap(src: AsyncIterable<Uint8Array>, h: Hash, size: { n: number }): AsyncGenerator<Uint8Array> {
  for await (const b of src) {
    h.update(b);
    size.n += b.length;
    yield b;
  }
}

/** A NAR is mostly tiny strings between file contents: gather them, so the compressor gets few big writes. */
async function* coalesce(src: AsyncIterable<Buffer>, min: number): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  let n = 0;
  for await (const b of src) {
    if (b.length >= min) {
      if (n) yield Buffer.concat(held, n);
      held = [];
      n = 0;
      yield b;
      continue;
    }
    held.push(b);
    n += b.length;
    if (n >= min) {
      yield Buffer.concat(held, n);
      held = [];
      n = 0;
    }
  }
  if (n) yield Buffer.concat(held, n);
}
