// Decoding on a worker thread with the built-in decoders: the same bytes as the host's programs
// compressed, in any chunking, through the relonix this
// checkout runs (the sources here; the bundle in the CLI tests); corrupt input and a failing source
// are errors that say so; a reader that stops early ends the thread (and the program). A tar
// stream comes in chunks that never split a file's content.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { decodeOffThread as decodeOn, type ThreadCodec } from '../../src/codec/decode-thread.ts';
import { requireTool } from '../helpers/tools.ts';

requireTool('xz');
requireTool('zstd');

/** Bytes that compress somewhat, the same on every run. */
function sample(size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = 7;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x % 5 === 0 ? x >>> 24 : 0x61 + (i % 13);
  }
  return b;
}

function compress(codec: ThreadCodec, data: Buffer): Buffer {
  const r = spawnSync(codec, ['-c', '-q', '-3'], { input: data, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

async function* pieces(b: Buffer, n: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += n) yield new Uint8Array(b.subarray(i, i + n));
}

async function collect(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of src) {
    assert.ok(Buffer.isBuffer(c), 'chunks arrive as Buffers');
    out.push(c);
  }
  return Buffer.concat(out);
}

const data = sample(6 * 1024 * 1024);

for (const codec of ['xz', 'zstd'] as const) {
  const decodeOffThread = (src: AsyncIterable<Uint8Array>, c: ThreadCodec) => decodeOn(src, c);
  const how = codec;
  test(`decode thread (${how}): two streams back to back, in pieces of any size, give the bytes the host's program compressed`, async () => {
    const z = Buffer.concat([compress(codec, data), compress(codec, data.subarray(0, 1000))]);
    for (const n of [4096, 1 << 20]) {
      const got = await collect(decodeOffThread(pieces(z, n), codec));
      assert.ok(got.equals(Buffer.concat([data, data.subarray(0, 1000)])), `pieces of ${n}`);
    }
    const small = data.subarray(0, 30000);
    assert.ok((await collect(decodeOffThread(pieces(compress(codec, small), 3), codec))).equals(small), 'pieces of 3 bytes');
  });

  test(`decode thread (${how}): the sha256 taken on the thread is that of every byte fed, given once the output has ended`, async () => {
    const z = compress(codec, data);
    let sha: string | undefined;
    const out: Buffer[] = [];
    for await (const c of decodeOn(pieces(z, 65536), codec, { onInputSha256: (h) => (sha = h) })) {
      assert.equal(sha, undefined, 'no digest before the output has ended');
      out.push(Buffer.from(c));
    }
    assert.ok(Buffer.concat(out).equals(data));
    assert.equal(sha, createHash('sha256').update(z).digest('hex'));
  });

  test(`decode thread (${how}): corrupt input and a failing source are errors, and an early stop ends the thread`, async () => {
    const z = compress(codec, data);
    const cut = z.subarray(0, Math.floor(z.length / 2));
    await assert.rejects(collect(decodeOffThread(pieces(cut, 65536), codec)), (e: unknown) => e instanceof Error && e.message.length > 0);
    const garbage = Buffer.from('this is not compressed at all, in any format relonix reads');
    await assert.rejects(collect(decodeOffThread(pieces(garbage, 7), codec)), (e: unknown) => e instanceof Error && e.message.length > 0);
    const failing = (async function* () {
      yield new Uint8Array(z.subarray(0, 1000));
      throw new Error('the download broke');
    })();
    await assert.rejects(collect(decodeOffThread(failing, codec)), /the download broke/);
    // a reader that takes one chunk and leaves: the generator's return ends the worker, so this
    // test finishes instead of waiting on a thread that still runs
    let n = 0;
    for await (const c of decodeOffThread(pieces(z, 65536), codec)) {
      n += c.length;
      break;
    }
    assert.ok(n > 0);
  });
}

/** A tar stream of files of these sizes (made by the host's tar from files of `sample` bytes). */
function tarOf(sizes: number[]): Buffer {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'relonix-decode-tar-'));
  try {
    for (const [i, size] of sizes.entries()) writeFileSync(path.join(dir, `f${i}`), sample(size));
    const r = spawnSync('tar', ['--format=gnu', '--sort=name', '-cf', '-', '-C', dir, '.'], { maxBuffer: 1 << 30 });
    assert.equal(r.status, 0, String(r.stderr));
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test(`decode thread (xz, a tar stream): the same bytes, each file's content within one chunk`, async () => {
  const sizes = [1000, 3 << 20, 0, 700_000, 200, (1 << 20) - 512, 5 << 20, 64];
  const tar = tarOf(sizes);
  const chunks: Buffer[] = [];
  for await (const c of decodeOn(pieces(compress('xz', tar), 65536), 'xz', { tar: true })) chunks.push(c as Buffer);
  assert.ok(Buffer.concat(chunks).equals(tar));
  // every file's content (found by its bytes, which differ from file to file) lies in one chunk
  for (const size of sizes.filter((s) => s > 0)) {
    const content = sample(size);
    assert.ok(
      chunks.some((c) => c.includes(content)),
      `the file of ${size} bytes is in one chunk`,
    );
  }
});
