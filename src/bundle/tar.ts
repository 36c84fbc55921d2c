// Writing a tar archive as GNU tar and busybox tar both read it: ustar headers, with a pax extended
// header before an entry whose name, link target or size does not fit. Every entry is owned by
// uid 0, dated 1 (as a Nix store dates its files), so the same closure gives the same bytes.

const BLOCK = 512;
/** the largest size the 11 octal digits of a ustar size field hold */
const MAX_OCTAL_SIZE = 0o77777777777;
const MTIME = 1;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'directory';

export interface TarEntry {
  /** the path inside the archive, relative, without a trailing slash; names and link targets are byte strings (latin1: one char a byte) */
  name: string;
  type: TarType;
  /** permission bits */
  mode: number;
  /** bytes of content that follow (files only) */
  size?: number;
  /** a symlink's target, or the earlier name a hard link shares its file with */
  linkname?: string;
}

const TYPE_FLAG: Record<TarType, string> = { file: '0', hardlink: '1', symlink: '2', directory: '5' };

/** The end of an archive: two zero blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

/** The zeros that round `size` bytes of content up to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

function octal(buf: Buffer, at: number, width: number, value: number): void {
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, at, width, 'latin1');
}

/** name and prefix fields for a path, or undefined when it needs a pax header. */
function splitName(name: Buffer): { name: Buffer; prefix: Buffer } | undefined {
  if (name.length <= 100) return { name, prefix: Buffer.alloc(0) };
  for (let at = name.indexOf(0x2f); at >= 0 && at <= 155; at = name.indexOf(0x2f, at + 1)) {
    if (name.length - at - 1 <= 100 && name.length - at - 1 > 0) return { prefix: name.subarray(0, at), name: name.subarray(at + 1) };
  }
  return undefined;
}

/** One pax record, `LEN key=value\n`, where LEN counts the whole record, its own digits too. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function ustar(fields: { name: Buffer; prefix: Buffer; mode: number; size: number; type: string; linkname: Buffer }): Buffer {
  const h = Buffer.alloc(BLOCK);
  fields.name.copy(h, 0);
  octal(h, 100, 8, fields.mode);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, fields.size);
  octal(h, 136, 12, MTIME);
  h.write(fields.type, 156, 'latin1');
  fields.linkname.copy(h, 157);
  h.write('ustar\x0000', 257, 'latin1');
  fields.prefix.copy(h, 345);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

/** The header blocks of one entry: a pax header first when a field does not fit ustar's. */
export function tarHeader(e: TarEntry): Buffer {
  const path = Buffer.from(e.type === 'directory' ? `${e.name}/` : e.name, 'latin1');
  const link = Buffer.from(e.linkname ?? '', 'latin1');
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  const records: Buffer[] = [];
  let names = splitName(path);
  if (!names) {
    records.push(paxRecord('path', path));
    names = { name: path.subarray(0, 100), prefix: Buffer.alloc(0) };
  }
  if (link.length > 100) records.push(paxRecord('linkpath', link));
  if (size > MAX_OCTAL_SIZE) records.push(paxRecord('size', Buffer.from(String(size))));
  const main = ustar({
    ...names,
    mode: e.mode,
    size: Math.min(size, MAX_OCTAL_SIZE),
    type: TYPE_FLAG[e.type],
    linkname: link.subarray(0, 100),
  });
  if (!records.length) return main;
  const pax = Buffer.concat(records);
  const paxName = Buffer.from(`PaxHeaders/${e.name.slice(-80).replace(/^\/+/, '')}`.slice(0, 100), 'latin1');
  return Buffer.concat([
    ustar({ name: paxName, prefix: Buffer.alloc(0), mode: 0o644, size: pax.length, type: 'x', linkname: Buffer.alloc(0) }),
    pax,
    tarPadding(pax.length),
    main,
  ]);
}
