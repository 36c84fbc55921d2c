// Publishing store paths to a binary cache. Per path: NAR first, narinfo last — the narinfo is the
// commit marker, so a cache read at any moment (or left behind by a kill) never has a narinfo
// pointing at a missing or partial NAR. A path whose narinfo exists is skipped, which makes
// re-publishing incremental and resuming after a kill simply "run it again".
import path from 'node:path';
import pRetry from 'p-retry';
import { dumpPath, formatNarHash } from '../store/nar.ts';
import { createHash } from 'node:crypto';
import { parseNarHashField, type RegInfo } from '../store/reginfo.ts';
import { toNixBase32 } from '../store/nixbase32.ts';
import { UserError, EXIT } from '../util/errors.ts';
import { formatNarInfo, narInfoKey, type NarInfo } from './narinfo.ts';
import { signNarInfo, type SecretKey } from './keys.ts';
import { compress, hostXz, narExtension, type Compression } from './compress.ts';
import { TransientError, type CacheTarget } from './targets.ts';
import { checkCacheInfo, formatCacheInfo, readManifest, MANIFEST_KEY, type Manifest } from './meta.ts';

export interface PublishOptions {
  target: CacheTarget;
  storeDir: string;
  /** registration records of every path to publish (a closure) */
  paths: RegInfo[];
  key: SecretKey;
  compression?: Compression;
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

/** Retries what the network or server got wrong, not what the request got wrong. */
export function withRetry<T>(fn: () => Promise<T>, o: { retries?: number; minRetryDelayMs?: number } = {}): Promise<T> {
  return pRetry(fn, {
    retries: o.retries ?? 6,
    minTimeout: o.minRetryDelayMs ?? 500,
    maxTimeout: 10_000,
    randomize: true,
    shouldRetry: ({ error }) => error instanceof TransientError || !(error instanceof UserError),
  });
}

/** Paths ordered so each comes after its references (cycles are only self-references in Nix). */
function topoOrder(paths: RegInfo[]): RegInfo[] {
  const by = new Map(paths.map((p) => [p.path, p]));
  const out: RegInfo[] = [];
  const seen = new Set<string>();
  const visit = (p: RegInfo) => {
    if (seen.has(p.path)) return;
    seen.add(p.path);
    for (const r of p.references) {
      const d = by.get(r);
      if (d && r !== p.path) visit(d);
    }
    out.push(p);
  };
  for (const p of [...paths].sort((a, b) => (a.path < b.path ? -1 : 1))) visit(p);
  return out;
}

export async function publishPaths(o: PublishOptions): Promise<PublishResult> {
  const log = o.log ?? (() => undefined);
  let compression: Compression = o.compression ?? 'xz';
  if (compression === 'xz' && !hostXz()) {
    log('notice: no xz on this host, so NARs are published uncompressed (Compression: none); install xz-utils for smaller caches');
    compression = 'none';
  }
  const retry = <T>(fn: () => Promise<T>) => withRetry(fn, o);

  const info = await retry(() => checkCacheInfo(o.target, o.storeDir));
  if (!info) await retry(() => o.target.put('nix-cache-info', Buffer.from(formatCacheInfo({ storeDir: o.storeDir })), 'text/x-nix-cache-info'));

  for (const p of o.paths) {
    if (path.dirname(p.path) !== o.storeDir) throw new UserError(`${p.path} is not in the store ${o.storeDir}`, { exitCode: EXIT.usage });
  }
  const ordered = topoOrder(o.paths);
  const done = new Map<string, Promise<void>>();
  let uploaded = 0;
  let skipped = 0;
  let narBytes = 0;

  // a small semaphore: at most `jobs` paths are hashed, compressed and uploaded at once
  const jobs = Math.max(1, o.jobs ?? 4);
  let active = 0;
  const waiting: (() => void)[] = [];
  const acquire = async () => {
    if (active >= jobs) await new Promise<void>((r) => waiting.push(r));
    active++;
  };
  const release = () => {
    active--;
    waiting.shift()?.();
  };

  const one = async (p: RegInfo): Promise<void> => {
    // references go up first, so a narinfo never names a path the cache cannot serve
    await Promise.all(p.references.filter((r) => r !== p.path).map((r) => done.get(r)));
    await acquire();
    try {
      const key = narInfoKey(p.path);
      if (await retry(() => o.target.has(key))) {
        skipped++;
        return;
      }
      const chunks: Buffer[] = [];
      const h = createHash('sha256');
      let size = 0;
      for await (const c of dumpPath(p.path)) {
        h.update(c);
        size += c.length;
        chunks.push(c);
      }
      const narHash = h.digest();
      const registered = parseNarHashField(p.narHash);
      if (!registered.equals(narHash) || size !== p.narSize) {
        throw new UserError(`${p.path} no longer matches its registration (NAR hash or size changed on disk)`, {
          exitCode: EXIT.integrity,
          hint: `repair it with nix-store --verify --check-contents --repair, then publish again`,
        });
      }
      const file = await compress(chunks, compression);
      chunks.length = 0;
      const fileHash = createHash('sha256').update(file).digest();
      const narKey = `nar/${toNixBase32(fileHash)}${narExtension(compression)}`;
      const ni: NarInfo = {
        storePath: p.path,
        url: narKey,
        compression,
        fileHash: formatNarHash(fileHash),
        fileSize: file.length,
        narHash: formatNarHash(narHash),
        narSize: size,
        references: p.references.map((r) => path.basename(r)).sort(),
        deriver: p.deriver ? path.basename(p.deriver) : undefined,
        sigs: [],
      };
      ni.sigs.push(signNarInfo(ni, o.key));
      if (!(await retry(() => o.target.has(narKey)))) {
        await retry(() => o.target.put(narKey, file, 'application/x-nix-nar'));
      }
      await retry(() => o.target.put(key, Buffer.from(formatNarInfo(ni)), 'text/x-nix-narinfo'));
      uploaded++;
      narBytes += file.length;
      log(`published ${path.basename(p.path)} (${file.length} bytes)`);
    } finally {
      release();
    }
  };

  for (const p of ordered) {
    const pr = one(p);
    pr.catch(() => undefined);
    done.set(p.path, pr);
  }
  const results = await Promise.allSettled(done.values());
  const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) {
    const e = failed.reason as unknown;
    if (e instanceof UserError) throw e;
    throw new UserError(`publishing to ${o.target.url} failed: ${(e as Error).message}`, {
      exitCode: e instanceof TransientError ? EXIT.network : EXIT.failure,
      hint: 'run the same command again: what is already in the cache is skipped',
      cause: e,
    });
  }

  if (o.record) {
    // the manifest goes last: it must only ever name a Nix whose whole closure is in the cache
    const rec = o.record;
    await retry(async () => {
      const m: Manifest = (await readManifest(o.target)) ?? { version: 1, storeDir: o.storeDir, nix: {} };
      if (m.storeDir !== o.storeDir) throw new UserError(`${o.target.url}/${MANIFEST_KEY} is for the store ${m.storeDir}, not ${o.storeDir}`, { exitCode: EXIT.usage });
      m.nix[rec.system] = { path: rec.nix, cacert: rec.cacert, publishedAt: new Date().toISOString() };
      await o.target.put(MANIFEST_KEY, Buffer.from(JSON.stringify(m, null, 2) + '\n'), 'application/json');
    });
  }
  return { uploaded, skipped, narBytes, compression };
}
