// Tar archives built byte by byte, in each header format, so that tests can write what no archiver
// would (a lying size, a wrong checksum, a name with a NUL), and read back with relonix's reader.
import { type TarHeader, TarReader } from '../../src/bootstrap/tar-reader.ts';

export type TarFormat = 'ustar' | 'gnu' | 'v7';

export interface RawEntry {
  /** the name field (cut to 100 bytes); strings are written as UTF-8 */
  name: string | Buffer;
  /** the ustar prefix field (155 bytes) */
  prefix?: string | Buffer;
  /** the typeflag, '0' unless given */
  type?: string;
  mode?: number;
  /** the content; the size field says its length unless `size` or `sizeField` is given */
  body?: string | Buffer;
  size?: number;
  /** the 12 bytes of the size field, as they are (base-256, garbage …) */
  sizeField?: Buffer;
  /** the 8 bytes of the mode field, as they are */
  modeField?: Buffer;
  link?: string | Buffer;
  format?: TarFormat;
  /** how the checksum is written: summed unsigned (the standard), signed (old tars), or wrong */
  checksum?: 'unsigned' | 'signed' | 'wrong';
}

const BLOCK = 512;
/** The end of an archive: two zero blocks. */
export const END = Buffer.alloc(2 * BLOCK);

function octal(h: Buffer, at: number, width: number, n: number): void {
  h.write(`${n.toString(8).padStart(width - 1, '0')}\0`, at, width, 'latin1');
}

const bytes = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s);

/** One header block. */
export function header(e: RawEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  const body = bytes(e.body ?? '');
  bytes(e.name).copy(h, 0, 0, 100);
  if (e.modeField) e.modeField.copy(h, 100, 0, 8);
  else octal(h, 100, 8, e.mode ?? 0o644);
  octal(h, 108, 8, 1000);
  octal(h, 116, 8, 1000);
  if (e.sizeField) e.sizeField.copy(h, 124, 0, 12);
  else octal(h, 124, 12, e.size ?? body.length);
  octal(h, 136, 12, 1_700_000_000);
  h.write(e.type ?? '0', 156, 1, 'latin1');
  if (e.link !== undefined) bytes(e.link).copy(h, 157, 0, 100);
  const format = e.format ?? 'ustar';
  if (format === 'ustar') h.write('ustar\x0000', 257, 'latin1');
  if (format === 'gnu') h.write('ustar  \0', 257, 'latin1');
  if (format !== 'v7') {
    h.write('user', 265, 'latin1');
    h.write('group', 297, 'latin1');
  }
  if (e.prefix !== undefined) bytes(e.prefix).copy(h, 345, 0, 155);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += e.checksum === 'signed' && b > 127 ? b - 256 : b;
  if (e.checksum === 'wrong') sum += 1;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

/** Zeros up to the next block. */
export function padding(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

/** One entry: its header and its content, padded. */
export function entry(e: RawEntry): Buffer {
  const body = bytes(e.body ?? '');
  return Buffer.concat([header(e), body, padding(body.length)]);
}

/** One pax record, `LEN key=value\n`, where LEN counts the whole record, its own digits too. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), bytes(value), Buffer.from('\n')]);
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
  return Buffer.concat([Buffer.from(String(len)), rest]);
}

/** A pax header entry ('x' for the next entry, 'g' global) holding these records. */
export function pax(records: Array<[string, string | Buffer]> | Buffer, flag: 'x' | 'g' = 'x'): Buffer {
  const body = Buffer.isBuffer(records) ? records : Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  return entry({ name: 'PaxHeaders/x', type: flag, body });
}

/** A GNU long name ('L') or long link target ('K') entry, NUL-terminated as GNU tar writes it. */
export function gnuLong(flag: 'L' | 'K', value: string | Buffer): Buffer {
  return entry({ name: '././@LongLink', type: flag, body: Buffer.concat([bytes(value), Buffer.from([0])]), format: 'gnu' });
}

export interface ReadBack extends TarHeader {
  body: Buffer;
}

/** Every entry of an archive, fed to the reader in chunks of `chunk` bytes (whole when not given). */
export function readTar(data: Buffer | Buffer[], chunk = 0): ReadBack[] {
  const out: ReadBack[] = [];
  const reader = new TarReader((h) => {
    const parts: Buffer[] = [];
    const e: ReadBack = { ...h, body: Buffer.alloc(0) };
    out.push(e);
    return {
      data: (b) => parts.push(b),
      end: () => {
        e.body = Buffer.concat(parts);
      },
    };
  });
  for (const d of Array.isArray(data) ? data : [data]) {
    if (!chunk) reader.write(d);
    else for (let at = 0; at < d.length; at += chunk) reader.write(d.subarray(at, at + chunk));
  }
  reader.end();
  return out;
}
