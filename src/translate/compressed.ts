// Store references inside compressed data (gzip, xz, zip members) cannot be rewritten in place:
// finding them is all a NAR rewrite can do, so that the packages that carry them can be named.
import { pipeline, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { decompress } from '../cache/compress.ts';
import { NIX_BASE32_ALPHABET } from '../store/nixbase32.ts';
import { indexOfBytes } from '../util/bytes.ts';
import type { Spool } from './spool.ts';

export type CompressedFormat = 'gzip' | 'xz' | 'zip';

/** Bytes enough to tell the formats apart. */
export const SNIFF_BYTES = 6;

export interface ReferencesFound {
  /** the zip member; none for gzip and xz */
  member?: string;
  /** hash parts of the store paths named, first 64 */
  hashes: string[];
  /** how many times the store dir occurs */
  occurrences: number;
}

const MAX_HASHES = 64;
const HASH = 32;

export function sniffCompressed(head: Uint8Array): CompressedFormat | undefined {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length >= 3 && b[0] === 0x1f && b[1] === 0x8b && b[2] === 8) return 'gzip';
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]))) return 'xz';
  if (b.length >= 4 && b.readUInt32LE(0) === 0x04034b50) return 'zip';
  return undefined;
}

/** Counts a store dir in a stream of decompressed bytes and notes the hash parts after it. */
class RefScanner {
  private carry = Buffer.alloc(0);
  readonly hashes = new Set<string>();
  occurrences = 0;

  constructor(private readonly needle: Buffer) {}

  feed(chunk: Uint8Array, final = false): void {
    const buf = Buffer.concat([this.carry, chunk]);
    const limit = final ? buf.length : buf.length - (this.needle.length + HASH);
    let at = indexOfBytes(buf, this.needle);
    for (; at >= 0 && at < limit; at = indexOfBytes(buf, this.needle, at + this.needle.length)) {
      this.occurrences++;
      const h = buf.toString('latin1', at + this.needle.length + 1, at + this.needle.length + 1 + HASH);
      if (buf[at + this.needle.length] === 0x2f && h.length === HASH && [...h].every((c) => NIX_BASE32_ALPHABET.includes(c)) && this.hashes.size < MAX_HASHES)
        this.hashes.add(h);
    }
    this.carry = buf.subarray(Math.max(0, limit));
  }

  async drain(src: AsyncIterable<Uint8Array>): Promise<ReferencesFound | undefined> {
    for await (const c of src) this.feed(c);
    this.feed(Buffer.alloc(0), true);
    return this.occurrences ? { hashes: [...this.hashes], occurrences: this.occurrences } : undefined;
  }
}

/** The store references in the decompressed data of a file held in `spool`. */
export async function scanCompressed(format: CompressedFormat, spool: Spool, storeDir: Buffer): Promise<ReferencesFound[]> {
  const whole = () => spool.read([0, spool.size]);
  if (format === 'zip') return scanZip(spool, storeDir);
  const plain = format === 'gzip' ? inflate(whole(), zlib.createGunzip()) : decompress(whole(), 'xz');
  const found = await new RefScanner(storeDir).drain(plain);
  return found ? [found] : [];
}

/** Bytes through a zlib stream; an error on either side ends the read with it. */
function inflate(src: AsyncIterable<Buffer>, z: zlib.Gunzip | zlib.InflateRaw): AsyncIterable<Buffer> {
  pipeline(Readable.from(src), z, () => undefined);
  return z;
}

interface Member {
  name: string;
  method: number;
  flags: number;
  size: number;
  local: number;
}

async function readAt(spool: Spool, from: number, to: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of spool.read([from, to])) parts.push(b);
  return Buffer.concat(parts);
}

class ZipError extends Error {}

/** The end-of-central-directory record: where the member list is. */
async function centralDirectory(spool: Spool): Promise<{ at: number; size: number; count: number }> {
  const tailStart = Math.max(0, spool.size - (0xffff + 22));
  const tail = await readAt(spool, tailStart, spool.size);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError('no end of central directory record');
  let count = tail.readUInt16LE(eocd + 10);
  let size = tail.readUInt32LE(eocd + 12);
  let at = tail.readUInt32LE(eocd + 16);
  if ((at === 0xffffffff || size === 0xffffffff || count === 0xffff) && eocd >= 20 && tail.readUInt32LE(eocd - 20) === 0x07064b50) {
    const rec = Number(tail.readBigUInt64LE(eocd - 12));
    const z = await readAt(spool, rec, rec + 56);
    if (z.readUInt32LE(0) !== 0x06064b50) throw new ZipError('a broken zip64 end of central directory record');
    count = Number(z.readBigUInt64LE(32));
    size = Number(z.readBigUInt64LE(40));
    at = Number(z.readBigUInt64LE(48));
  }
  return { at, size, count };
}

function members(cd: Buffer, count: number): Member[] {
  const out: Member[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw new ZipError(`member ${i} of the central directory is broken`);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    let size = cd.readUInt32LE(p + 20);
    let local = cd.readUInt32LE(p + 42);
    const big = [cd.readUInt32LE(p + 24) === 0xffffffff, size === 0xffffffff, local === 0xffffffff];
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; e += 4 + cd.readUInt16LE(e + 2)) {
      if (cd.readUInt16LE(e) !== 1) continue;
      let q = e + 4;
      if (big[0]) q += 8;
      if (big[1]) [size, q] = [Number(cd.readBigUInt64LE(q)), q + 8];
      if (big[2]) local = Number(cd.readBigUInt64LE(q));
    }
    out.push({ name, method: cd.readUInt16LE(p + 10), flags: cd.readUInt16LE(p + 8), size, local });
    p += 46 + nameLen + extraLen + cd.readUInt16LE(p + 32);
  }
  return out;
}

async function scanZip(spool: Spool, storeDir: Buffer): Promise<ReferencesFound[]> {
  const dir = await centralDirectory(spool);
  const list = members(await readAt(spool, dir.at, dir.at + dir.size), dir.count);
  const out: ReferencesFound[] = [];
  for (const m of list) {
    if (m.flags & 1) throw new ZipError(`member ${m.name} is encrypted`);
    if (m.method !== 0 && m.method !== 8) throw new ZipError(`member ${m.name} uses compression method ${m.method}, which is not read here`);
    const head = await readAt(spool, m.local, m.local + 30);
    if (head.length < 30 || head.readUInt32LE(0) !== 0x04034b50) throw new ZipError(`the local header of member ${m.name} is broken`);
    const data = m.local + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
    if (data + m.size > spool.size) throw new ZipError(`member ${m.name} runs past the end of the file`);
    const raw = spool.read([data, data + m.size]);
    const found = await new RefScanner(storeDir).drain(m.method === 8 ? inflate(raw, zlib.createInflateRaw()) : raw);
    if (found) out.push({ member: m.name, ...found });
  }
  return out;
}
