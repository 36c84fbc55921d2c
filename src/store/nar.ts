import { createHash } from 'node:crypto';
import { promises as fs, createReadStream } from 'node:fs';
import path from 'node:path';
import { toNixBase32 } from './nixbase32.ts';

// NAR strings: u64 little-endian length, bytes, zero padding to a multiple of 8.
const PAD = Buffer.alloc(8);

export function narString(s: string | Buffer): Buffer {
  const body = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(body.length));
  const pad = (8 - (body.length % 8)) % 8;
  return Buffer.concat([len, body, PAD.subarray(0, pad)]);
}

function lenPrefix(n: number): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(n));
  return len;
}

const T = (...parts: string[]) => Buffer.concat(parts.map((p) => narString(p)));
const MAGIC = narString('nix-archive-1');
const OPEN = narString('(');
const CLOSE = narString(')');
const TYPE_REGULAR = T('type', 'regular');
const TYPE_SYMLINK = T('type', 'symlink', 'target');
const TYPE_DIRECTORY = T('type', 'directory');
const EXECUTABLE = T('executable', '');
const CONTENTS = narString('contents');
const ENTRY_NAME = T('entry', '(', 'name');
const NODE = narString('node');

/** Names in a directory in the byte order Nix uses (std::string comparison). */
export async function sortedEntries(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir);
  return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Streams the NAR serialisation of a file tree, as `nix-store --dump` writes it. */
export async function* dumpPath(p: string): AsyncGenerator<Buffer> {
  yield MAGIC;
  yield* dumpNode(p);
}

async function* dumpNode(p: string): AsyncGenerator<Buffer> {
  const st = await fs.lstat(p);
  yield OPEN;
  if (st.isSymbolicLink()) {
    yield TYPE_SYMLINK;
    yield narString(await fs.readlink(p, { encoding: 'buffer' }));
  } else if (st.isFile()) {
    yield TYPE_REGULAR;
    if (st.mode & 0o100) yield EXECUTABLE;
    yield CONTENTS;
    yield lenPrefix(st.size);
    if (st.size <= 1 << 20) {
      const data = await fs.readFile(p);
      if (data.length !== st.size) throw new Error(`${p} changed size while it was being archived`);
      yield data;
    } else {
      let seen = 0;
      for await (const chunk of createReadStream(p, { highWaterMark: 1 << 20 })) {
        seen += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (seen !== st.size) throw new Error(`${p} changed size while it was being archived`);
    }
    const pad = (8 - (st.size % 8)) % 8;
    if (pad) yield PAD.subarray(0, pad);
  } else if (st.isDirectory()) {
    yield TYPE_DIRECTORY;
    for (const name of await sortedEntries(p)) {
      yield ENTRY_NAME;
      yield narString(name);
      yield NODE;
      yield* dumpNode(path.join(p, name));
      yield CLOSE;
    }
  } else {
    throw new Error(`${p} is neither a regular file, a directory nor a symlink; a NAR cannot hold it`);
  }
  yield CLOSE;
}

export interface NarDigest {
  /** raw sha256 of the NAR */
  hash: Buffer;
  size: number;
}

export async function narDigest(p: string): Promise<NarDigest> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of dumpPath(p)) {
    h.update(chunk);
    size += chunk.length;
  }
  return { hash: h.digest(), size };
}

/** `sha256:<nix-base32>`, the form .reginfo and narinfo files use. */
export function formatNarHash(hash: Buffer): string {
  return `sha256:${toNixBase32(hash)}`;
}
