// Writing NARs: the serialisation of a file tree as `nix-store --dump` writes it, its digest, and
// a hasher for callers that walk a tree themselves (relocation hashes what it writes).
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { changedWhileRead, notStorable } from '../errors.ts';
import { toNixBase32 } from '../nixbase32.ts';
import {
  CLOSE,
  CONTENTS,
  compareNames,
  ENTRY_NAME,
  EXECUTABLE,
  lenPrefix,
  MAGIC,
  NODE,
  narString,
  OPEN,
  padLength,
  TYPE_DIRECTORY,
  TYPE_REGULAR,
  TYPE_SYMLINK,
  ZEROS,
} from './framing.ts';

/** Names in a directory in the byte order Nix uses. */
export async function sortedEntries(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort(compareNames);
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
      if (data.length !== st.size) throw changedWhileRead(p, data.length, st.size);
      yield data;
    } else {
      let seen = 0;
      for await (const chunk of createReadStream(p, { highWaterMark: 1 << 20 })) {
        seen += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (seen !== st.size) throw changedWhileRead(p, seen, st.size);
    }
    const pad = padLength(st.size);
    if (pad) yield ZEROS.subarray(0, pad);
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
    throw notStorable(p);
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

/**
 * The sha256 and size of a NAR told node by node, for a caller walking the tree itself: open(),
 * then regular(), symlink() or directory() with entry() … close() per child, then close().
 */
export class NarHasher {
  readonly h: Hash = createHash('sha256');
  size = 0;
  constructor() {
    this.add(MAGIC);
  }
  private add(...bufs: Buffer[]): void {
    for (const b of bufs) {
      this.h.update(b);
      this.size += b.length;
    }
  }
  open(): void {
    this.add(OPEN);
  }
  close(): void {
    this.add(CLOSE);
  }
  /** a regular file of `data`, or of its pieces one after another */
  regular(data: Buffer | readonly Buffer[], executable: boolean): void {
    const pieces = Buffer.isBuffer(data) ? [data] : data;
    const size = pieces.reduce((n, b) => n + b.length, 0);
    this.add(TYPE_REGULAR);
    if (executable) this.add(EXECUTABLE);
    this.add(CONTENTS, lenPrefix(size), ...pieces);
    const pad = padLength(size);
    if (pad) this.add(ZEROS.subarray(0, pad));
  }
  symlink(target: string): void {
    this.add(TYPE_SYMLINK, narString(target));
  }
  directory(): void {
    this.add(TYPE_DIRECTORY);
  }
  /** a directory entry; its node follows (open() …), then close() ends the entry */
  entry(name: string): void {
    this.add(ENTRY_NAME, narString(name), NODE);
  }
}

/** `sha256:<nix-base32>`, the form .reginfo and narinfo files use. */
export function formatNarHash(hash: Buffer): string {
  return `sha256:${toNixBase32(hash)}`;
}
