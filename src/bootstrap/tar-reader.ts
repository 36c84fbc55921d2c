// Reading a tar archive as it arrives: fed chunks with `write`, told the input is over with `end`,
// it hands each entry's header to `onEntry` and then the entry's content, as subarrays of the chunks
// it was given (never a copy), to the body the callback returned. Synchronous: a chunk is done with
// when `write` returns.
//
// It reads POSIX ustar (a name's prefix field), GNU tar ('L' long names, 'K' long link targets),
// pax ('x' records for the next entry: path, linkpath, size; 'g' records are read and ignored) and
// old v7 headers. Anything it cannot read for certain is an error, never a guess: a header whose
// checksum is wrong, a number that is not one, a pax record whose length lies, an archive that ends
// inside an entry. Entry types it does not know come through as such, named, for the caller to refuse.

/** An archive that does not read as tar: damaged, cut short, or hostile. The unpack says it is a damaged tarball. */
export class TarFormatError extends Error {}

const BLOCK = 512;
/** the most a pax or long-name entry may hold: names and link targets, not content */
const MAX_META = 1 << 20;

/** An entry's type, by its typeflag; other flags give a name of their own ('SparseFile', '"Z"' …). */
export type TarEntryType =
  | 'File'
  | 'OldFile'
  | 'ContiguousFile'
  | 'Directory'
  | 'SymbolicLink'
  | 'Link'
  | 'CharacterDevice'
  | 'BlockDevice'
  | 'FIFO'
  | (string & {});

export interface TarHeader {
  /** the entry's name as the archive gives it (a directory's keeps its trailing '/') */
  path: string;
  type: TarEntryType;
  /** permission bits with setuid, setgid and sticky; undefined when the field is empty */
  mode: number | undefined;
  /** bytes of content that follow the header (0 for a directory, whatever its header says) */
  size: number;
  /** a symlink's target, or the earlier name a hard link shares its file with */
  linkpath: string | undefined;
}

/** Where an entry's content goes: `data` for each piece as it arrives, then `end` once. */
export interface TarBody {
  data(bytes: Buffer): void;
  end(): void;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'File',
  '\0': 'OldFile',
  '1': 'Link',
  '2': 'SymbolicLink',
  '3': 'CharacterDevice',
  '4': 'BlockDevice',
  '5': 'Directory',
  '6': 'FIFO',
  '7': 'ContiguousFile',
  // read, and refused by name by whoever reads the entries
  A: 'SolarisACL',
  D: 'GNUDumpDir',
  I: 'Inode',
  M: 'ContinuationFile',
  N: 'OldGnuLongPath',
  S: 'SparseFile',
  V: 'TapeVolumeHeader',
  X: 'OldExtendedHeader',
};

/** A field cut at its first NUL, as tar does, and read as UTF-8. */
function text(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

/**
 * A numeric field: octal digits after optional spaces, ended by a NUL or a space (or by the field's
 * end), or base-256 when the first byte has its high bit set. Undefined when the field is empty.
 */
function number(b: Buffer, what: string, entry: string): number | undefined {
  if (b[0]! & 0x80) {
    if (b[0]! & 0x40) throw new TarFormatError(`${entry}: its ${what} is negative`);
    let n = b[0]! & 0x3f;
    for (let i = 1; i < b.length; i++) {
      n = n * 256 + b[i]!;
      if (n > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`${entry}: its ${what} is too large`);
    }
    return n;
  }
  let i = 0;
  while (i < b.length && b[i] === 0x20) i++;
  let n = 0;
  const start = i;
  for (; i < b.length && b[i]! >= 0x30 && b[i]! <= 0x37; i++) n = n * 8 + (b[i]! - 0x30);
  const end = i;
  for (; i < b.length && (b[i] === 0 || b[i] === 0x20); i++);
  // what follows the terminator is left alone, as tar does; what comes before it must be digits
  if (end < b.length && i === end) throw new TarFormatError(`${entry}: its ${what} is not a number (${JSON.stringify(b.toString('latin1'))})`);
  return end === start ? undefined : n;
}

/** True when the header's checksum field matches its bytes, summed unsigned or (old tars) signed. */
function checksumOk(h: Buffer, entry: string): boolean {
  const want = number(h.subarray(148, 156), 'header checksum', entry);
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i === 148) i = 156;
    const c = h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

function isZero(b: Buffer, from: number): boolean {
  for (let i = from; i < from + BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** What pax and GNU headers say of the next entry. */
interface Pending {
  path?: string;
  linkpath?: string;
  size?: number;
}

/** pax records, `LEN key=value\n` each, where LEN counts the whole record. */
function paxRecords(data: Buffer, into: Pending | undefined, entry: string): void {
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0 && data.subarray(at).every((c) => c === 0)) return; // padding some writers leave
    let len = 0;
    let i = at;
    for (; i < data.length && data[i]! >= 0x30 && data[i]! <= 0x39 && i - at < 16; i++) len = len * 10 + (data[i]! - 0x30);
    const eq = data.indexOf(0x3d, i);
    if (i === at || data[i] !== 0x20 || at + len > data.length || eq < 0 || eq >= at + len || data[at + len - 1] !== 0x0a) {
      throw new TarFormatError(`${entry}: a pax record at byte ${at} of its header is malformed`);
    }
    const key = data.toString('utf8', i + 1, eq);
    const value = text(data.subarray(eq + 1, at + len - 1));
    at += len;
    if (!into) continue;
    if (key === 'path') into.path = value;
    else if (key === 'linkpath') into.linkpath = value;
    else if (key === 'size') {
      if (!/^[0-9]{1,16}$/.test(value) || Number(value) > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`${entry}: its pax size is not a size (${value})`);
      into.size = Number(value);
    }
  }
}

export class TarReader {
  /** the partial header when a chunk ends inside one */
  private readonly head = Buffer.alloc(BLOCK);
  private headLen = 0;
  /** content bytes of the current entry still to come, then the zeros that pad it to a block */
  private remain = 0;
  private padding = 0;
  private body: TarBody | undefined;
  /** the content of a pax or long-name entry, gathered */
  private meta: { flag: string; parts: Buffer[]; size: number } | undefined;
  private pending: Pending | undefined;
  /** the entry being read, and the last one that was no pax or long-name header, for what an error says */
  private current = '';
  private last = '';
  private zeroBlocks = 0;
  private done = false;
  private failed: unknown;

  constructor(private readonly onEntry: (h: TarHeader) => TarBody | undefined) {}

  write(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    try {
      this.consume(b);
    } catch (e) {
      this.failed = e;
      throw e;
    }
  }

  /** The input is over: it must end where an entry ends (or after the archive's end blocks). */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.done) return;
    if (this.remain > 0) throw new TarFormatError(`the archive ends inside ${this.current}, ${this.remain} bytes of its content short`);
    if (this.padding > 0) throw new TarFormatError(`the archive ends inside the padding after ${this.current}`);
    if (this.headLen > 0) throw new TarFormatError(`the archive ends inside the header after ${this.last || 'its start'}`);
    if (this.pending) throw new TarFormatError(`the archive ends after a pax or long-name header (${this.current}) with no entry for it`);
    this.done = true;
  }

  private consume(b: Buffer): void {
    let at = 0;
    while (at < b.length && !this.done) {
      if (this.remain > 0) {
        const n = Math.min(this.remain, b.length - at);
        const piece = b.subarray(at, at + n);
        if (this.meta) this.meta.parts.push(Buffer.from(piece));
        else this.body?.data(piece);
        this.remain -= n;
        at += n;
        if (this.remain === 0) this.finish();
        continue;
      }
      if (this.padding > 0) {
        const n = Math.min(this.padding, b.length - at);
        this.padding -= n;
        at += n;
        continue;
      }
      if (this.headLen > 0 || b.length - at < BLOCK) {
        const n = Math.min(BLOCK - this.headLen, b.length - at);
        b.copy(this.head, this.headLen, at, at + n);
        this.headLen += n;
        at += n;
        if (this.headLen === BLOCK) {
          this.headLen = 0;
          this.header(this.head);
        }
        continue;
      }
      this.header(b.subarray(at, at + BLOCK));
      at += BLOCK;
    }
  }

  /** The current entry's content is all in. */
  private finish(): void {
    const meta = this.meta;
    const body = this.body;
    this.meta = undefined;
    this.body = undefined;
    if (meta) this.applyMeta(meta.flag, Buffer.concat(meta.parts, meta.size));
    else body?.end();
  }

  private applyMeta(flag: string, data: Buffer): void {
    if (flag === 'g') {
      paxRecords(data, undefined, this.current);
      return;
    }
    this.pending ??= {};
    if (flag === 'x') paxRecords(data, this.pending, this.current);
    else if (flag === 'L') this.pending.path = text(data);
    else this.pending.linkpath = text(data);
  }

  private header(h: Buffer): void {
    const where = this.last ? `the header after ${this.last}` : 'the first header';
    if (isZero(h, 0)) {
      // two zero blocks end the archive; a lone one is skipped, as tar does
      if (++this.zeroBlocks === 2) {
        if (this.pending) throw new TarFormatError(`the archive ends after a pax or long-name header (${this.current}) with no entry for it`);
        this.done = true;
      }
      return;
    }
    this.zeroBlocks = 0;
    if (!checksumOk(h, where)) throw new TarFormatError(`${where} has a wrong checksum: the archive is damaged`);
    const flag = String.fromCharCode(h[156]!);
    let size = number(h.subarray(124, 136), 'size', where) ?? 0;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_META) throw new TarFormatError(`${where} is a pax or long-name header of ${size} bytes, more than names need`);
      this.current = `the ${flag === 'x' || flag === 'g' ? 'pax' : 'long-name'} header after ${this.last || 'the start'}`;
      this.meta = { flag, parts: [], size };
      this.content(size);
      return;
    }
    const ustar = h.toString('latin1', 257, 263) === 'ustar\0';
    let path = text(h.subarray(0, 100));
    if (ustar && h[345] !== 0) path = `${text(h.subarray(345, 500))}/${path}`;
    const pending = this.pending;
    this.pending = undefined;
    if (pending?.path !== undefined) path = pending.path;
    if (pending?.size !== undefined) size = pending.size;
    const linkpath = pending?.linkpath ?? text(h.subarray(157, 257));
    this.current = JSON.stringify(path);
    this.last = this.current;
    if (!path) throw new TarFormatError(`${where} names no entry`);
    let type = TYPES[flag] ?? JSON.stringify(flag);
    // old tars mark a directory as a file whose name ends in '/'
    if ((type === 'File' || type === 'OldFile') && path.endsWith('/')) type = 'Directory';
    // a directory has no content, whatever its size field says
    if (type === 'Directory') size = 0;
    const mode = number(h.subarray(100, 108), 'mode', this.current);
    this.body = this.onEntry({ path, type, mode: mode === undefined ? undefined : mode & 0o7777, size, linkpath: linkpath || undefined }) ?? undefined;
    this.content(size);
  }

  /** The entry just read has `size` bytes of content, padded to a block; none, and it is done. */
  private content(size: number): void {
    this.remain = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.finish();
  }
}
