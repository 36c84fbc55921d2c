// A NAR on its way to a cache: streamed through a hash (NarHash, NarSize), the compressor and a
// second hash (FileHash, FileSize) into a staging file, from which it is uploaded. Nothing of its
// size is held in memory, whatever the NAR's size.

import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Compression, compressStream } from './compress.ts';

export interface StagedNar {
  narHash: Buffer;
  narSize: number;
  fileHash: Buffer;
  fileSize: number;
}

/** The NAR's hash and size from whatever made it, once it has been read to its end (the NAR is then not hashed again). */
export type KnownHash = () => { hash: Buffer; size: number } | undefined;

/**
 * NAR bytes → sha256 → compressor → sha256 → `file` (which must not exist; removed on failure).
 * `known`: the NAR is hashed already as it is made; only the compressed file is hashed here.
 */
export async function stageNarStream(nar: AsyncIterable<Uint8Array>, compression: Compression, file: string, known?: KnownHash): Promise<StagedNar> {
  const narHash = createHash('sha256');
  const fileHash = createHash('sha256');
  const narSize = { n: 0 };
  const fileSize = { n: 0 };
  let staged: Pick<StagedNar, 'narHash' | 'narSize'>;
  try {
    const raw = known ? coalesce(nar, 1 << 16) : tap(coalesce(nar, 1 << 16), narHash, narSize);
    // uncompressed, the file is the NAR: one hash serves both
    const out = compression === 'none' ? raw : tap(compressStream(raw, compression), fileHash, fileSize);
    await pipeline(Readable.from(out), createWriteStream(file, { flags: 'wx' }));
    staged = known ? knownHash(known) : { narHash: narHash.digest(), narSize: narSize.n };
  } catch (e) {
    await fs.rm(file, { force: true });
    throw e;
  }
  return compression === 'none'
    ? { ...staged, fileHash: staged.narHash, fileSize: staged.narSize }
    : { ...staged, fileHash: fileHash.digest(), fileSize: fileSize.n };
}

/** What `known` gives once the NAR has ended. */
export function knownHash(known: KnownHash): Pick<StagedNar, 'narHash' | 'narSize'> {
  const k = known();
  if (!k) throw new Error('internal error: the NAR ended without the hash of what was made');
  return { narHash: k.hash, narSize: k.size };
}

async function* tap(src: AsyncIterable<Uint8Array>, h: Hash, size: { n: number }): AsyncGenerator<Uint8Array> {
  for await (const b of src) {
    h.update(b);
    size.n += b.length;
    yield b;
  }
}

/** A NAR is mostly tiny strings between file contents: gather them, so the compressor gets few big writes. */
async function* coalesce(src: AsyncIterable<Uint8Array>, min: number): AsyncGenerator<Uint8Array> {
  let held: Uint8Array[] = [];
  let n = 0;
  for await (const b of src) {
    if (b.length >= min) {
      if (n) yield Buffer.concat(held, n);
      held = [];
      n = 0;
      yield b;
      continue;
    }
    held.push(b);
    n += b.length;
    if (n >= min) {
      yield Buffer.concat(held, n);
      held = [];
      n = 0;
    }
  }
  if (n) yield Buffer.concat(held, n);
}
