// Same-length replacement of store references in a byte stream: a store dir and 32-character hash
// parts, wherever they are (Nix's RewritingSink replaces bare hash parts too). Equal lengths keep
// every offset, so binaries stay valid and a NAR keeps its size.
import { isNixBase32, NIX_BASE32_ALPHABET } from '../store/nixbase32.ts';
import { indexOfBytes } from '../util/bytes.ts';
import { RelonixError } from '../util/errors.ts';

export interface RewriteRules {
  fromStoreDir: string;
  toStoreDir: string;
  /** hash part -> hash part, 32 nix-base32 characters each */
  hashes: ReadonlyMap<string, string>;
}

export interface Compiled {
  /** the store dir the bytes were written for */
  oldDir: Buffer;
  /** what to replace with toDir, as latin1 (findDirs searches strings): oldDir, or '' when the store dir stays */
  fromDir: string;
  toDir: Buffer;
  /** how many hash parts change */
  hashCount: number;
  /** bit per 4-character prefix of the changing hash parts: most windows are ruled out by one lookup */
  prefixes: Uint8Array;
  /** the changing hash parts by their prefix: [old, new] */
  byPrefix: Map<number, [Buffer, Buffer][]>;
  /** bytes held back at the end of a chunk: a match may start there and end in the next */
  tail: number;
}

export interface Counts {
  hashes: number;
  storeDirs: number;
}

const HASH = 32;
const IS_NIX32 = new Uint8Array(256);
/** a nix-base32 character's digit, 5 bits */
const DIGIT = new Uint8Array(256);
for (let i = 0; i < 32; i++) {
  IS_NIX32[NIX_BASE32_ALPHABET.charCodeAt(i)] = 1;
  DIGIT[NIX_BASE32_ALPHABET.charCodeAt(i)] = i;
}
const PREFIX_MASK = (1 << 20) - 1;

function prefixOf(b: Uint8Array, at: number): number {
  return (DIGIT[b[at]!]! << 15) | (DIGIT[b[at + 1]!]! << 10) | (DIGIT[b[at + 2]!]! << 5) | DIGIT[b[at + 3]!]!;
}

/** A store dir that is not absolute, or ends in a slash. */
export function notAStoreDir(d: string): RelonixError {
  return new RelonixError(`"${d}" is not a store dir`, {
    kind: 'usage',
    hint: 'a store dir is an absolute path without a trailing slash, such as /nix/store',
  });
}

/**
 * Store dirs of different lengths: a rewrite in place would move bytes. `url`: the cache that
 * serves the store `from`, when one does.
 */
export function storeDirLengthsDiffer(from: string, to: string, url?: string): RelonixError {
  const [n, m] = [Buffer.byteLength(from), Buffer.byteLength(to)];
  return new RelonixError(
    url
      ? `${url} serves the store ${from} (${n} bytes), which cannot be rewritten in place into ${to} (${m} bytes)`
      : `the store ${from} (${n} bytes) cannot be rewritten in place into ${to} (${m} bytes)`,
    {
      kind: 'usage',
      hint: `translate into a prefix whose store dir is as long as ${from}: relonix bootstrap --store-dir DIR (e.g. /tmp/store for /nix/store)`,
    },
  );
}

/** A rewrite rule whose side is not a hash part. */
export function notAHashPart(h: string): RelonixError {
  return new RelonixError(`"${h}" is not a store hash part (32 nix-base32 characters)`, {
    kind: 'usage',
    hint: 'map hash parts to hash parts of the same length',
  });
}

/** Two rewrite rules with one target: the rewrite could not be undone, nor told apart. */
export function hashMappedTwice(to: string): RelonixError {
  return new RelonixError(`two hash parts are mapped to ${to}`, { kind: 'usage', hint: 'map each hash part to its own twin' });
}

function checkStoreDir(d: string): void {
  if (!d.startsWith('/') || d.endsWith('/') || d.length < 2) throw notAStoreDir(d);
}

/** Checks the rules once: anything but equal lengths would move bytes, which a NAR rewrite in place cannot. */
export function compileRules(rules: RewriteRules): Compiled {
  checkStoreDir(rules.fromStoreDir);
  checkStoreDir(rules.toStoreDir);
  const fromDir = Buffer.from(rules.fromStoreDir);
  const toDir = Buffer.from(rules.toStoreDir);
  if (fromDir.length !== toDir.length) throw storeDirLengthsDiffer(rules.fromStoreDir, rules.toStoreDir);
  const byPrefix = new Map<number, [Buffer, Buffer][]>();
  const prefixes = new Uint8Array((PREFIX_MASK + 1) >> 3);
  const targets = new Set<string>();
  let hashCount = 0;
  for (const [from, to] of rules.hashes) {
    for (const h of [from, to]) {
      if (h.length !== HASH || !isNixBase32(h)) throw notAHashPart(h);
    }
    if (targets.has(to)) throw hashMappedTwice(to);
    targets.add(to);
    if (from === to) continue;
    const old = Buffer.from(from, 'latin1');
    const p = prefixOf(old, 0);
    prefixes[p >> 3]! |= 1 << (p & 7);
    byPrefix.set(p, [...(byPrefix.get(p) ?? []), [old, Buffer.from(to, 'latin1')]]);
    hashCount++;
  }
  const same = fromDir.equals(toDir);
  return {
    oldDir: fromDir,
    fromDir: same ? '' : fromDir.toString('latin1'),
    toDir,
    hashCount,
    prefixes,
    byPrefix,
    tail: Math.max(HASH, fromDir.length) - 1,
  };
}

/**
 * Replaces, in place, every match in `buf` that starts before `limit` (each lies wholly inside
 * `buf`), found on the bytes as they were. Returns where the last match ends (0 if none).
 */
export function replaceIn(buf: Buffer, limit: number, c: Compiled, counts: Counts): number {
  // the store dirs are found before any hash part changes, so both are found on the bytes as they
  // were; the hash parts are replaced as they are found, each past the bytes the search has read
  const dirs = c.fromDir ? findDirs(buf, limit, c.fromDir, c.oldDir) : [];
  let end = 0;
  if (c.hashCount) {
    end = replaceHashes(buf, limit, c);
    counts.hashes += replaced;
  }
  const to = c.toDir;
  for (const at of dirs) {
    buf.set(to, at);
    end = Math.max(end, at + to.length);
  }
  counts.storeDirs += dirs.length;
  return end;
}

/**
 * Where the store dir (`dir` as latin1, `bytes` as bytes) starts in `buf`, before `limit`, without
 * overlaps. The next one is found on the bytes, and the window from it on in a string: a binary names
 * a store dir rarely, and indexOfBytes skips to it (a 12 MB nix binary: 0.7 ms against 4-6 ms in
 * strings), while a text file names one on every line, and a string's indexOf costs a fifth of a
 * Buffer's per call (10 MB of lines that each name a store path: 8 ms against 42). A string per
 * window: with one per chunk, translating a 128 MiB NAR grew the process by 76 MiB (20 MiB in windows).
 */
function findDirs(buf: Buffer, limit: number, dir: string, bytes: Buffer): number[] {
  const out: number[] = [];
  const end = Math.min(buf.length, limit + dir.length - 1);
  for (let from = indexOfBytes(buf, bytes); from >= 0 && from < limit; ) {
    const to = Math.min(end, from + WINDOW);
    const s = buf.toString('latin1', from, to);
    for (let at = 0; at >= 0 && from + at < limit; at = s.indexOf(dir, at + dir.length)) out.push(from + at);
    if (to === end) break;
    // on past the last match, or from where a match could still begin
    from = indexOfBytes(buf, bytes, Math.max(out[out.length - 1]! + dir.length, to - dir.length + 1));
  }
  return out;
}

/**
 * How many hash parts the last replaceHashes replaced: a variable, not a property of the caller's,
 * because V8 compiles that function's loop while it runs, before the code after it has ever run,
 * and a property written there threw the compiled loop away at the end of a call, again and again
 * (rewriting 42 MB of bench:substitute-like NARs nine times: 5-18 deoptimizations of it → 1-2).
 */
let replaced = 0;

/** bytes searched per string in findDirs */
const WINDOW = 8192;

/** The twin of the hash part at `at` in `buf`, if it is one that changes. */
function twinAt(buf: Buffer, at: number, prefix: number, c: Compiled): Buffer | undefined {
  if (!(c.prefixes[prefix >> 3]! & (1 << (prefix & 7)))) return undefined;
  next: for (const [old, twin] of c.byPrefix.get(prefix)!) {
    for (let i = 4; i < HASH; i++) if (buf[at + i] !== old[i]) continue next;
    return twin;
  }
  return undefined;
}

/**
 * Replaces the known hash parts in `buf` that start before `limit` with their twins, left to right
 * without overlaps. Hash parts are runs of 32 nix-base32 characters; a byte outside that alphabet
 * rules out every window over it, so probing one byte in 32 skips most of a binary without looking at
 * the rest. A twin is written where the search has already been (its characters are nix-base32 too,
 * so the runs read around it are as they were).
 * Returns where the last one ends (0 if none); how many it replaced is left in `replaced`.
 */
function replaceHashes(buf: Buffer, limit: number, c: Compiled): number {
  const len = buf.length;
  let end = 0;
  let n = 0;
  let floor = 0;
  for (let p = HASH - 1; p < len; ) {
    if (!IS_NIX32[buf[p]!]) {
      p += HASH;
      continue;
    }
    let s = p;
    while (s > floor && IS_NIX32[buf[s - 1]!]) s--;
    let e = p + 1;
    while (e < len && IS_NIX32[buf[e]!]) e++;
    let prefix = e - s >= HASH ? prefixOf(buf, s) : 0;
    for (let w = s; w + HASH <= e && w < limit; ) {
      const twin = twinAt(buf, w, prefix, c);
      if (twin) {
        buf.set(twin, w);
        n++;
        w += HASH;
        end = w;
        if (w + 4 <= len) prefix = prefixOf(buf, w);
      } else {
        prefix = ((prefix << 5) | DIGIT[buf[w + 4]!]!) & PREFIX_MASK;
        w++;
      }
    }
    if (s >= limit) break;
    floor = e;
    p = e + HASH;
  }
  replaced = n;
  return end;
}

/** A copy of a small whole value (a name, a symlink target) with every match replaced. */
export function replaceAll(b: Uint8Array, c: Compiled, counts: Counts): Buffer {
  const copy = Buffer.from(b);
  replaceIn(copy, copy.length, c, counts);
  return copy;
}

/** Replaces matches in a stream of chunks; a match may straddle any chunk boundary. */
export async function* replaceStream(chunks: AsyncIterable<Uint8Array>, c: Compiled, counts: Counts): AsyncGenerator<Buffer> {
  let carry = Buffer.alloc(0);
  for await (const chunk of chunks) {
    // a fresh buffer: the caller's chunks are never written to
    const buf = Buffer.concat([carry, chunk]);
    const limit = buf.length - c.tail;
    if (limit <= 0) {
      carry = buf;
      continue;
    }
    const cut = Math.max(limit, replaceIn(buf, limit, c, counts));
    yield buf.subarray(0, cut);
    carry = buf.subarray(cut);
  }
  if (carry.length) {
    replaceIn(carry, carry.length, c, counts);
    yield carry;
  }
}
