// One NAR from a cache into the store: fetched (over HTTP through a resumable download), checked
// against FileHash as it passes, decompressed, unpacked into a temporary beside its place, checked
// against NarHash and NarSize, and only then renamed to its store path. `restoreRun` does the same
// for many NARs through one decompressor.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CodecError } from '../codec/error.ts';
import { download } from '../net/download.ts';
import type { Layout } from '../prefix/layout.ts';
import { unpackNar } from '../store/nar/unpack.ts';
import { formatNarHash } from '../store/nar/write.ts';
import { parseNarHashField } from '../store/reginfo.ts';
import { errorMessage, isKind, RelonixError } from '../util/errors.ts';
import { removeTree, tempSibling } from '../util/fs.ts';
import { isTransient, POLICY } from '../util/retry.ts';
import { pipeThrough } from '../util/spawn.ts';
import { decompress, decompressLong } from './compress.ts';
import { cacheIncomplete } from './meta.ts';
import type { NarInfo } from './narinfo.ts';
import type { CacheTarget } from './targets.ts';

export interface Item {
  ni: NarInfo;
  target: CacheTarget;
}

/**
 * Over HTTP a NAR file lands in downloads/ first, so a cut connection resumes with Range instead of
 * starting over: the download of it, resolving to the file; none for other targets.
 */
function narDownload(l: Layout, ni: NarInfo, target: CacheTarget): Promise<string> | undefined {
  const src = target.httpSource?.(ni.url);
  if (!src) return undefined;
  const localFile = path.join(l.downloadsDir, 'nar', path.basename(ni.url));
  return (async () => {
    await fs.mkdir(path.dirname(localFile), { recursive: true });
    const sha256 = ni.fileHash?.startsWith('sha256:') ? ni.fileHash.slice(7) : undefined;
    // a NAR is checked wherever it is read, and deleted once unpacked: a sync before each rename
    // held each run up for nothing
    await download({ url: src.url, dest: localFile, headers: src.headers, sha256, durable: sha256 === undefined, ...POLICY.nar });
    return localFile;
  })();
}

/**
 * The bytes of a NAR file as a stream, checked against FileHash as they pass. Over HTTP it lands in
 * a resumable download first (`downloading`: one started earlier), unless `streamed` (a reader that
 * checks the NAR itself and can start over, such as the translator, needs no file on disk in between).
 */
export async function openNarFile(
  l: Layout,
  ni: NarInfo,
  target: CacheTarget,
  how: { streamed?: boolean; downloading?: Promise<string> } = {},
): Promise<{ bytes: AsyncIterable<Uint8Array>; done: () => Promise<void> }> {
  const where = `${target.url}/${ni.url}`;
  const missing = () => cacheIncomplete(where, `which the narinfo of ${ni.storePath} names`);
  const downloading = how.downloading ?? (how.streamed && target.openRead ? undefined : narDownload(l, ni, target));
  if (downloading) {
    const localFile = await downloading;
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
  checkFileSize(ni, where, size);
  const got = h.digest();
  if (ni.fileHash && formatNarHash(got) !== ni.fileHash && got.toString('hex') !== ni.fileHash.slice(7)) {
    throw narNotAsPromised(where, `file hash ${formatNarHash(got)} is not the ${ni.fileHash} the narinfo promises (${size} bytes)`);
  }
}

/** Refuses a NAR file whose size is not the FileSize its narinfo promises. */
function checkFileSize(ni: NarInfo, where: string, size: number): void {
  if (ni.fileSize !== undefined && size !== ni.fileSize) throw narNotAsPromised(where, `${size} bytes, but the narinfo promises ${ni.fileSize}`);
}

/**
 * Unpacks one NAR into a temporary beside its store path, checks it, and renames it into place.
 * The NAR reader's format errors, and a decompressor's, become integrity errors here.
 */
async function unpackChecked({ ni, target }: Item, nar: AsyncIterable<Uint8Array>, beforeRename?: () => Promise<void>): Promise<void> {
  const dest = ni.storePath;
  const tmp = tempSibling(dest);
  try {
    let r;
    try {
      r = await unpackNar(nar, tmp);
    } catch (e) {
      if (e instanceof RelonixError || isTransient(e)) throw e;
      throw narUnusable({ ni, target }, e);
    }
    if (!r.hash.equals(parseNarHashField(ni.narHash)) || r.size !== ni.narSize) {
      throw narNotAsPromised(dest, `the NAR has hash ${formatNarHash(r.hash)} and size ${r.size}, but the narinfo says ${ni.narHash} and ${ni.narSize}`);
    }
    await beforeRename?.();
    await fs.rename(tmp, dest);
  } catch (e) {
    await removeTree(tmp);
    throw e;
  }
}

/** Fetch, decompress and unpack one path in one stream. */
export async function restoreOne(l: Layout, item: Item): Promise<void> {
  const nar = await openNarFile(l, item.ni, item.target);
  try {
    await unpackChecked(item, decompress(nar.bytes, item.ni.compression));
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
 * What a run downloads ahead of the NAR it decompresses: over a network each download waits a round
 * trip or more before its first byte, and most NARs of a closure are small, so with one ahead a
 * restore from a distant cache waited on latency rather than bandwidth (a loopback cache answering
 * each request after 40 ms, the fixture's 48 NARs: restore stage 1.40-1.43 s with one ahead, about
 * 1.0 s with this). At most `count` NARs and, past the first, `bytes` of them: the downloads stay
 * on disk until their turn.
 */
const AHEAD = { count: 8, bytes: 64 << 20 };

/**
 * One decompressor for a whole run of paths: starting a program costs milliseconds per NAR (most
 * NARs are small), and xz and zstd both read files one after another as one stream. The NARs come
 * out back to back, and each is exactly its NarSize long, so the output splits cleanly. Paths are
 * taken from the shared queue as the decompressor asks for input (over HTTP, a few downloads ahead),
 * so workers stay evenly loaded.
 */
export async function restoreRun(l: Layout, queue: Item[], compression: string, onDone: (it: Item) => void, readAhead = AHEAD): Promise<void> {
  const taken: Item[] = [];
  let completed = 0;
  let inputError: unknown;
  // the next paths over HTTP, taken early so their downloads run while this one is decompressed
  const ahead: { it: Item; downloading: Promise<string> }[] = [];
  // no decompressor for a run with nothing to do (xz refuses empty input)
  const first = queue.shift();
  if (!first) return;
  const input = (async function* () {
    try {
      let downloading = narDownload(l, first.ni, first.target);
      for (let it: Item | undefined = first; it; ) {
        taken.push(it);
        while (ahead.length < readAhead.count && queue[0]?.target.httpSource) {
          const bytes = ahead.reduce((n, a) => n + fileBytes(a.it), 0);
          if (ahead.length && bytes + fileBytes(queue[0]) > readAhead.bytes) break;
          const next = queue.shift()!;
          const downloading = narDownload(l, next.ni, next.target)!;
          downloading.catch(() => undefined); // its turn reports it
          ahead.push({ it: next, downloading });
        }
        const nar = await openNarFile(l, it.ni, it.target, { downloading });
        try {
          yield* nar.bytes;
        } finally {
          await nar.done();
        }
        const next = ahead.shift();
        it = next?.it ?? queue.shift();
        downloading = next ? next.downloading : it && narDownload(l, it.ni, it.target);
      }
    } catch (e) {
      inputError = e;
      throw e;
    }
  })();
  const out = new Pieces(decompressLong(input, compression));
  try {
    for (;;) {
      // reading output is what drives the input side, and output only exists for a path already taken
      if (await out.atEnd()) {
        if (inputError) throw inputError;
        if (completed < taken.length) throw narUnusable(taken[completed]!, new CodecError('the decompressed stream ends before it'));
        return;
      }
      if (completed >= taken.length) throw narUnusable(taken.at(-1)!, new CodecError('the decompressed stream goes on past its end'));
      const it = taken[completed]!;
      await unpackChecked(it, out.take(it.ni.narSize));
      completed++;
      onDone(it);
    }
  } catch (e) {
    // downloads begun ahead finish first: another try must not write the same file beside them
    await Promise.all(ahead.map((a) => a.downloading.catch(() => undefined)));
    // what was handed to this run and is not in place yet goes back for another try
    queue.unshift(...taken.slice(completed), ...ahead.map((a) => a.it));
    // a failed download or a bad FileHash starves the decompressor: that, not the short NAR, is the news
    throw inputError ?? e;
  } finally {
    await out.close();
  }
}

/** Files per run of the decompressor: a command line has room for them, and a closure of thousands takes a few runs. */
const FILES_PER_RUN = 256;

/**
 * A run of NARs that are files on this machine (a file:// cache): the host's decompressor (`bin`)
 * reads them itself, named on its command line, into one output stream that splits as restoreRun's
 * does. Feeding them through a pipe cost as much CPU as decoding them. Each file's size is checked
 * before the program starts, and its FileHash beside it (the file read again, from the page cache)
 * before its path takes its name. Paths in place leave `queue`. Resolves false, with the rest still
 * in `queue`, when the program fails or its output is not the NARs promised: restoreRun then reads
 * them through its decoder, which passes over a broken program, and says which NAR is bad and why.
 */
export async function restoreFiles(queue: Item[], bin: string, onDone: (it: Item) => void, perRun = FILES_PER_RUN): Promise<boolean> {
  while (queue.length) {
    const batch = queue.slice(0, perRun);
    const files = await Promise.all(batch.map(localNarFile));
    let fileError: unknown;
    let checked = Promise.resolve();
    const checks = batch.map((it, i) => {
      checked = checked.then(() => checkLocalFile(it, files[i]!));
      checked.catch((e) => {
        fileError ??= e;
      });
      return checked;
    });
    const out = new Pieces(pipeThrough(bin, ['-d', '-c', '-q', '--', ...files], noInput(), (detail) => new CodecError(detail)));
    try {
      for (const [i, it] of batch.entries()) {
        try {
          await unpackChecked(it, out.take(it.ni.narSize), () => checks[i]!);
        } catch (e) {
          if (fileError) throw fileError;
          if (isKind(e, 'integrity')) return false;
          throw e;
        }
        queue.shift();
        onDone(it);
      }
      // the program's exit status, and nothing left over
      if (!(await out.atEnd().catch(() => false))) return false;
    } finally {
      await out.close();
    }
  }
  return true;
}

/** A NAR file's size as its narinfo gives it (its NAR's, without a FileSize). */
export function fileBytes({ ni }: Item): number {
  return ni.fileSize ?? ni.narSize;
}

/** A program's input when it reads files of its own. */
async function* noInput(): AsyncGenerator<Uint8Array> {}

/** Where a NAR of a directory cache is, its size checked against FileSize. */
async function localNarFile({ ni, target }: Item): Promise<string> {
  const where = `${target.url}/${ni.url}`;
  const file = await target.localFile?.(ni.url);
  if (!file) throw cacheIncomplete(where, `which the narinfo of ${ni.storePath} names`);
  checkFileSize(ni, where, (await fs.stat(file)).size);
  return file;
}

/** The file read through, FileSize and FileHash checked as a streamed NAR's are. */
async function checkLocalFile({ ni, target }: Item, file: string): Promise<void> {
  for await (const _ of fileHashChecked(createReadStream(file, { highWaterMark: 1 << 20 }), ni, `${target.url}/${ni.url}`));
}

/** A NAR whose bytes are not what its signed narinfo promises (size, file hash, NAR hash): nothing of it is registered. */
export function narNotAsPromised(where: string, what: string): RelonixError {
  return new RelonixError(`${where}: ${what}`, {
    kind: 'integrity',
    hint: 'the cache holds a truncated, corrupt or altered NAR; nothing was registered; publish the path to it again',
  });
}

/** A NAR from a cache that cannot be decompressed or read as a NAR: a damaged cache object. */
export function narUnusable({ ni, target }: Item, cause: unknown): RelonixError {
  return new RelonixError(`${ni.storePath}: the NAR from ${target.url}/${ni.url} is unusable: ${errorMessage(cause)}`, {
    kind: 'integrity',
    hint: 'republish the path; run again to retry',
    cause,
  });
}
