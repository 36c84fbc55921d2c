// Restoring a Nix closure from a binary cache into a prefix, and stage 2 (the relocated Nix
// realising a Nix built for the prefix). Every narinfo must carry a signature by a trusted key; every
// NAR is checked (FileHash, NarHash, NarSize) while it is unpacked into a temporary directory inside
// the store, and renamed into place only when it checks out. The database learns of the paths only
// once all of them are in place, so a failed or killed restore registers nothing; a re-run skips the
// paths already present and intact.
import { createHash } from 'node:crypto';
import { promises as fs, createReadStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import type { Layout } from '../store/layout.ts';
import { formatNarHash, narDigest } from '../store/nar/write.ts';
import { formatRegInfo, parseNarHashField } from '../store/reginfo.ts';
import { parseStoreBasename } from '../store/storepath.ts';
import { nixEnvironment } from '../bootstrap/nixenv.ts';
import { download } from '../net/download.ts';
import { RelonixError, errorMessage, isKind, type ErrorKind } from '../util/errors.ts';
import { removeTree, exists } from '../util/fs.ts';
import { parseNarInfo, narInfoKey, type NarInfo } from './narinfo.ts';
import { parsePublicKey, verifyNarInfo, type PublicKey } from './keys.ts';
import { decompress, hostDecompressor } from './compress.ts';
import { unpackNar } from '../store/nar/read.ts';
import { openTarget, TransientError, type CacheTarget, type TargetOptions } from './targets.ts';
import { checkCacheInfo, readManifest, storeDirMismatch, STORE_DIR_HINT, type ManifestEntry } from './meta.ts';
import { withRetry } from './publish.ts';
import { runNixStore } from './nixstore.ts';

export type RestoreProgress = (e: { message: string; done?: number; total?: number }) => void;

export interface RestoreOptions {
  layout: Layout;
  caches: string[];
  trustedKeys: string[];
  system: string;
  onProgress?: RestoreProgress;
  /** nix-store to register with when the restored Nix has none (tests with a host Nix) */
  nixStore?: string;
  targetOptions?: TargetOptions;
  jobs?: number;
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
      m = await withRetry(() => readManifest(target), { retries: 3 });
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
  if (problems.length) {
    const kind = problems.every((p) => p.kind === 'usage') ? 'usage' : 'network';
    throw new RelonixError(`no usable cache names a Nix for ${system} and ${storeDir}: ${problems.map((p) => p.text).join('; ')}`, {
      kind,
      hint: kind === 'usage' ? STORE_DIR_HINT : 'check that the cache is reachable, then run again',
    });
  }
  return undefined;
}

function trusted(keys: string[]): PublicKey[] {
  if (keys.length === 0) {
    throw new RelonixError('restoring from a cache needs at least one trusted public key', {
      kind: 'usage',
      hint: 'pass --trusted-key NAME:BASE64 (the content of the NAME.public file the cache was signed with)',
    });
  }
  return keys.map(parsePublicKey);
}

async function fetchNarInfo(targets: CacheTarget[], storePath: string): Promise<{ ni: NarInfo; target: CacheTarget }> {
  const key = narInfoKey(storePath);
  for (const t of targets) {
    const b = await withRetry(() => t.get(key), { retries: 4 });
    if (!b) continue;
    let ni: NarInfo;
    try {
      ni = parseNarInfo(b.toString('utf8'), `${t.url}/${key}`);
    } catch (e) {
      throw new RelonixError(errorMessage(e), { kind: 'integrity' });
    }
    if (ni.storePath !== storePath) throw new RelonixError(`${t.url}/${key} describes ${ni.storePath}, not ${storePath}`, { kind: 'integrity' });
    return { ni, target: t };
  }
  throw new RelonixError(`no cache has ${storePath} (looked for ${key} in ${targets.map((t) => t.url).join(', ')})`, {
    kind: 'network',
    hint: 'the cache is incomplete: publish the closure again (relonix publish) and retry',
  });
}

/** Reads the closure's narinfos (following References) and checks every signature. */
export async function closureNarInfos(targets: CacheTarget[], roots: string[], keys: PublicKey[], storeDir: string): Promise<Map<string, { ni: NarInfo; target: CacheTarget }>> {
  const out = new Map<string, { ni: NarInfo; target: CacheTarget }>();
  let frontier = [...new Set(roots)];
  while (frontier.length) {
    const got = await Promise.all(frontier.map((p) => fetchNarInfo(targets, p)));
    const next: string[] = [];
    for (const g of got) {
      const signer = verifyNarInfo(g.ni, keys);
      if (!signer) {
        const names = g.ni.sigs.map((s) => s.split(':')[0]).join(', ') || 'none';
        throw new RelonixError(`${g.ni.storePath}: no valid signature by a trusted key (signatures by: ${names}; trusted: ${keys.map((k) => k.name).join(', ')})`, {
          kind: 'integrity',
          hint: 'the narinfo was altered or signed with another key; pass the right --trusted-key, or republish the cache',
        });
      }
      out.set(g.ni.storePath, g);
      for (const r of g.ni.references) {
        const full = `${storeDir}/${r}`;
        if (!out.has(full) && !next.includes(full) && !frontier.includes(full)) next.push(full);
      }
    }
    frontier = next.filter((p) => !out.has(p));
  }
  return out;
}

/** The bytes of a NAR file as a stream, checked against FileHash as they pass. */
async function openNarFile(l: Layout, ni: NarInfo, target: CacheTarget): Promise<{ bytes: AsyncIterable<Uint8Array>; done: () => Promise<void> }> {
  const where = `${target.url}/${ni.url}`;
  const missing = () => new RelonixError(`${where} is missing (named by the narinfo of ${ni.storePath})`, { kind: 'integrity', hint: 'publish the path again' });
  const src = target.httpSource?.(ni.url);
  if (src) {
    // over HTTP the file lands in downloads/ first: a cut connection resumes with Range instead of starting over
    const localFile = path.join(l.downloadsDir, 'nar', path.basename(ni.url));
    await fs.mkdir(path.dirname(localFile), { recursive: true });
    await download({ url: src.url, dest: localFile, headers: src.headers, sha256: ni.fileHash?.startsWith('sha256:') ? ni.fileHash.slice(7) : undefined, retries: 6, minRetryDelayMs: 300 });
    return { bytes: createReadStream(localFile, { highWaterMark: 1 << 20 }), done: () => fs.rm(localFile, { force: true }) };
  }
  const raw = target.openRead ? await target.openRead(ni.url) : await target.get(ni.url).then((b) => (b ? Readable.from([b]) : undefined));
  if (!raw) throw missing();
  // an uncompressed NAR is its own file: the NarHash check after unpacking covers the same bytes
  const sameBytes = ni.compression === 'none' && ni.fileHash === ni.narHash && (ni.fileSize ?? ni.narSize) === ni.narSize;
  return { bytes: sameBytes ? raw : fileHashChecked(raw, ni, where), done: async () => undefined };
}

async function* fileHashChecked(raw: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, ni: NarInfo, where: string): AsyncGenerator<Uint8Array> {
  const h = createHash('sha256');
  let size = 0;
  for await (const b of raw) {
    h.update(b);
    size += b.length;
    yield b;
  }
  if (ni.fileSize !== undefined && size !== ni.fileSize) {
    throw new RelonixError(`${where}: ${size} bytes, but the narinfo promises ${ni.fileSize}`, { kind: 'integrity', hint: 'the cache holds a truncated or altered NAR; republish the path' });
  }
  const got = h.digest();
  if (ni.fileHash && formatNarHash(got) !== ni.fileHash && got.toString('hex') !== ni.fileHash.slice(7)) {
    throw new RelonixError(`${where}: file hash ${formatNarHash(got)} is not the ${ni.fileHash} the narinfo promises (${size} bytes)`, { kind: 'integrity', hint: 'the cache holds a corrupt or altered NAR; republish the path' });
  }
}

async function retryTransient<T>(fn: () => Promise<T>, retries: number): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof TransientError) || attempt >= retries) throw e;
      await new Promise((r) => setTimeout(r, 300 * 2 ** attempt));
    }
  }
}

interface Item {
  ni: NarInfo;
  target: CacheTarget;
}

/** Whether the path is already in the store, intact; a damaged one is removed. */
async function present(ni: NarInfo): Promise<boolean> {
  if (!(await exists(ni.storePath))) return false;
  // a path is only ever renamed into place after it checked out; re-hash anyway, cheap next to a download
  const d = await narDigest(ni.storePath).catch(() => undefined);
  if (d && d.hash.equals(parseNarHashField(ni.narHash)) && d.size === ni.narSize) return true;
  await removeTree(ni.storePath);
  return false;
}

/** Unpacks one NAR into a temporary directory in the store, checks it, and renames it into place. */
async function unpackChecked(l: Layout, { ni, target }: Item, nar: AsyncIterable<Uint8Array>): Promise<void> {
  const dest = ni.storePath;
  const tmp = path.join(l.storeDir, `.relonix-${path.basename(dest)}-${randomBytes(4).toString('hex')}`);
  try {
    let r;
    try {
      r = await unpackNar(nar, tmp);
    } catch (e) {
      if (e instanceof RelonixError || e instanceof TransientError) throw e;
      throw new RelonixError(`${dest}: the NAR from ${target.url}/${ni.url} is unusable: ${errorMessage(e)}`, { kind: 'integrity', hint: 'republish the path; run again to retry', cause: e });
    }
    if (!r.hash.equals(parseNarHashField(ni.narHash)) || r.size !== ni.narSize) {
      throw new RelonixError(`${dest}: the NAR has hash ${formatNarHash(r.hash)} and size ${r.size}, but the narinfo says ${ni.narHash} and ${ni.narSize}`, {
        kind: 'integrity',
        hint: 'the cache holds a corrupt or tampered NAR; nothing was registered',
      });
    }
    await fs.rename(tmp, dest);
  } catch (e) {
    await removeTree(tmp);
    throw e;
  }
}

/** Fetch, decompress and unpack one path in one stream. */
async function restoreOne(l: Layout, item: Item): Promise<void> {
  const nar = await openNarFile(l, item.ni, item.target);
  try {
    await unpackChecked(l, item, decompress(nar.bytes, item.ni.compression));
  } finally {
    await nar.done();
  }
}

/** Hands out a byte stream in consecutive pieces of known sizes. */
class Pieces {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  constructor(src: AsyncIterable<Uint8Array>) {
    this.it = src[Symbol.asyncIterator]();
  }
  async *take(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      if (this.buf.length === 0) {
        const r = await this.it.next();
        if (r.done) return; // the NAR reader reports what is missing
        this.buf = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
        continue;
      }
      const b = this.buf.subarray(0, Math.min(n, this.buf.length));
      this.buf = this.buf.subarray(b.length);
      n -= b.length;
      yield b;
    }
  }
  async atEnd(): Promise<boolean> {
    while (this.buf.length === 0) {
      const r = await this.it.next();
      if (r.done) return true;
      this.buf = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
    return false;
  }
  /** stops the source (and the decompressor behind it) */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

/**
 * One decompressor for a whole run of paths: starting a program costs milliseconds per NAR (most
 * NARs are small), and xz and zstd both read files one after another as one stream. The NARs come
 * out back to back, and each is exactly its NarSize long, so the output splits cleanly. Paths are
 * taken from the shared queue as the decompressor asks for input, so workers stay evenly loaded.
 */
async function restoreRun(l: Layout, queue: Item[], compression: string, onDone: (it: Item) => void): Promise<void> {
  const taken: Item[] = [];
  let completed = 0;
  let inputError: unknown;
  // no decompressor for a run with nothing to do (xz refuses empty input)
  const first = queue.shift();
  if (!first) return;
  const input = (async function* () {
    try {
      for (let it: Item | undefined = first; it; it = queue.shift()) {
        taken.push(it);
        const nar = await openNarFile(l, it.ni, it.target);
        try {
          yield* nar.bytes;
        } finally {
          await nar.done();
        }
      }
    } catch (e) {
      inputError = e;
      throw e;
    }
  })();
  const out = new Pieces(decompress(input, compression));
  try {
    for (;;) {
      // reading output is what drives the input side, and output only exists for a path already taken
      if (await out.atEnd()) {
        if (inputError) throw inputError;
        if (completed < taken.length) throw new Error(`the decompressor stopped before ${taken[completed]!.ni.storePath}`);
        return;
      }
      if (completed >= taken.length) throw new Error('the decompressor wrote more than the NARs it was given');
      const it = taken[completed]!;
      await unpackChecked(l, it, out.take(it.ni.narSize));
      completed++;
      onDone(it);
    }
  } catch (e) {
    // what was handed to this run and is not in place yet goes back for another try
    queue.unshift(...taken.slice(completed));
    // a failed download or a bad FileHash starves the decompressor: that, not the short NAR, is the news
    throw inputError ?? e;
  } finally {
    await out.close();
  }
}

/** Restores store paths (with their closures) from caches, then registers them all at once. */
export async function restoreClosure(o: RestoreOptions & { roots: string[]; nix?: string; targets?: CacheTarget[] }): Promise<string[]> {
  const l = o.layout;
  const keys = trusted(o.trustedKeys);
  const targets = o.targets ?? o.caches.map((u) => openTarget(u, o.targetOptions));
  for (const t of targets) await withRetry(() => checkCacheInfo(t, l.storeDir), { retries: 3 });
  for (const r of o.roots) parseStoreBasename(path.basename(r));
  o.onProgress?.({ message: 'reading narinfos' });
  const infos = await closureNarInfos(targets, o.roots, keys, l.storeDir);
  await fs.mkdir(l.storeDir, { recursive: true });
  // what a killed restore was unpacking never got its real name; the caller holds the prefix lock,
  // so no other restore is unpacking now
  for (const n of await fs.readdir(l.storeDir)) if (n.startsWith('.relonix-')) await removeTree(path.join(l.storeDir, n));
  // largest first: the biggest NAR decides when the last worker finishes
  const all = [...infos.values()].sort((a, b) => (b.ni.fileSize ?? b.ni.narSize) - (a.ni.fileSize ?? a.ni.narSize));
  const total = all.length;
  let doneCount = 0;
  const onDone = ({ ni }: Item, how: 'present' | 'restored') => {
    doneCount++;
    o.onProgress?.({ message: `${how} ${path.basename(ni.storePath)}`, done: doneCount, total });
  };
  // what a killed run already put in place stays; checking it reads it, so that is done once, here
  const here = await Promise.all(all.map(({ ni }) => present(ni)));
  all.forEach((it, i) => here[i] && onDone(it, 'present'));
  const queue = all.filter((_, i) => !here[i]);
  const restored = (it: Item) => onDone(it, 'restored');
  const compressions = new Set(all.map(({ ni }) => ni.compression));
  const batched = compressions.size === 1 && hostDecompressor([...compressions][0]!) !== null;
  const worker = async () => {
    if (batched) {
      // a stream cut short sends its unfinished paths back to the queue for another run
      await retryTransient(() => restoreRun(l, queue, [...compressions][0]!, restored), 4);
      return;
    }
    for (let it = queue.shift(); it; it = queue.shift()) {
      const item = it;
      // a stream cut short starts that path over; what it wrote is gone with its temporary directory
      await retryTransient(() => restoreOne(l, item), 4);
      restored(item);
    }
  };
  const jobs = Math.max(1, Math.min(o.jobs ?? 4, queue.length));
  const results = await Promise.allSettled(Array.from({ length: jobs }, worker));
  const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;

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
  await runNixStore({ layout: l, nix: o.nix, nixStore: o.nixStore }, ['--load-db'], formatRegInfo(records));
  // partial downloads are kept between runs so they resume; once everything is in, none is needed
  await removeTree(path.join(l.downloadsDir, 'nar'));
  return records.map((r) => r.path);
}

export async function restoreFromCache(opts: RestoreOptions): Promise<{ nix: string; cacert?: string; paths: string[] }> {
  const l = opts.layout;
  const found = await findNixInCaches(opts.caches, l.storeDir, opts.system, opts.targetOptions);
  if (!found) {
    throw new RelonixError(`none of the caches (${opts.caches.join(', ')}) names a Nix for ${opts.system} and the store ${l.storeDir}`, {
      kind: 'usage',
      hint: 'publish one with `relonix publish --to URL --secret-key FILE` from a prefix with the same store dir, or bootstrap from the tarball',
    });
  }
  const { entry, target } = found;
  opts.onProgress?.({ message: `restoring ${entry.path} from ${target.url}` });
  const others = opts.caches.filter((u) => u !== target.url).map((u) => openTarget(u, opts.targetOptions));
  const roots = [entry.path, ...(entry.cacert ? [entry.cacert] : [])];
  const paths = await restoreClosure({ ...opts, roots, nix: entry.path, targets: [target, ...others] });
  return { nix: entry.path, cacert: entry.cacert, paths };
}

export async function realiseNixFromCache(opts: {
  layout: Layout;
  caches: string[];
  trustedKeys: string[];
  system: string;
  env: NodeJS.ProcessEnv;
}): Promise<{ nix: string } | null> {
  const found = await findNixInCaches(opts.caches, opts.layout.storeDir, opts.system);
  if (!found) return null;
  trusted(opts.trustedKeys);
  const r = await execa(
    'nix-store',
    [
      '--realise',
      found.entry.path,
      '--option', 'substituters', opts.caches.join(' '),
      '--option', 'trusted-public-keys', opts.trustedKeys.join(' '),
      '--option', 'require-sigs', 'true',
      '--option', 'narinfo-cache-negative-ttl', '0',
    ],
    { env: opts.env ?? nixEnvironment(opts.layout), extendEnv: false, reject: false },
  );
  if (r.exitCode !== 0) {
    throw new RelonixError(`the relocated Nix could not realise ${found.entry.path} from ${opts.caches.join(', ')}: ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`, {
      kind: 'network',
      hint: 'check the cache URL and --trusted-key; `relonix publish` fills the cache',
    });
  }
  return { nix: found.entry.path };
}
