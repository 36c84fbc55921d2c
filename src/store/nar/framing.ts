// The NAR format's framing, shared by the writer and the reader. Every token is a string: a u64
// little-endian length, the bytes, zero padding to a multiple of 8. An archive is `nix-archive-1`
// then one node: `(` `type` `regular` [`executable` ""] `contents` <bytes> `)`, or `(` `type`
// `symlink` `target` <target> `)`, or `(` `type` `directory` then `entry` `(` `name` <name> `node`
// <node> `)` per entry, sorted by name, and `)`.

/** Input that is not a NAR, or not one Nix would accept. The reader's only error type. */
export class NarFormatError extends Error {}

/** the longest token (names, keywords) the reader accepts */
export const MAX_TOKEN = 4096;
/** the longest symlink target the reader accepts */
export const MAX_TARGET = 65536;

export const ZEROS = Buffer.alloc(8);

export function padLength(len: number): number {
  return (8 - (len % 8)) % 8;
}

export function lenPrefix(n: number): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(n));
  return len;
}

export function narString(s: string | Buffer): Buffer {
  const body = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([lenPrefix(body.length), body, ZEROS.subarray(0, padLength(body.length))]);
}

const T = (...parts: string[]) => Buffer.concat(parts.map((p) => narString(p)));

/** Token runs as the writer emits them. */
export const MAGIC = narString('nix-archive-1');
export const OPEN = narString('(');
export const CLOSE = narString(')');
export const TYPE_REGULAR = T('type', 'regular');
export const TYPE_SYMLINK = T('type', 'symlink', 'target');
export const TYPE_DIRECTORY = T('type', 'directory');
export const EXECUTABLE = T('executable', '');
export const CONTENTS = narString('contents');
export const ENTRY_NAME = T('entry', '(', 'name');
export const NODE = narString('node');

/** Token runs as the readers expect them, where a reader decides between alternatives. */
export const OPEN_TYPE = T('(', 'type');
export const OPEN_NAME = T('(', 'name');
export const TARGET = narString('target');
export const EMPTY = narString('');

/** Directory entries in the byte order Nix sorts them (std::string comparison). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
