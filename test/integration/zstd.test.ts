// zstd NARs: the host's zstd and the pure decoder (fzstd) read what the host writes in any chunking,
// frames one after another read as one stream, corrupt input is a clear Error on both paths (never a
// hang, never a huge allocation), and how publish picks a compression.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { checkCompressionChoice, compressStream, decompress, narExtension, resolveCompression } from '../../src/cache/compress.ts';
import { ZSTD_MAX_WINDOW, ZstdFrames } from '../../src/codec/zstd.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { requireTool } from '../helpers/tools.ts';

requireTool('zstd');

/** Runs fn with environment variables set, restoring them afterwards. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v))
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
  };
  set(vars);
  try {
    return await fn();
  } finally {
    set(saved);
  }
}

const HOST = { RELONIX_NO_HOST_ZSTD: undefined };
const PURE = { RELONIX_NO_HOST_ZSTD: '1' };

/** Deterministic bytes that compress somewhat: text-like runs mixed with noise. */
function sample(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  const words = ['nix-archive-1', 'directory', 'regular', 'contents', '/nix/store/', 'libfoo.so.1', '\0\0\0\0'];
  let i = 0;
  while (i < size) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (x % 3 === 0) {
      i += b.write(words[x % words.length]!, i);
    } else {
      b[i++] = x & 0xff;
    }
  }
  return b;
}

function pieces(b: Uint8Array, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
  return out;
}

async function* from(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c;
}

async function collect(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of src) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function hostZstd(data: Buffer, args: string[] = ['-c', '-q', '-3']): Buffer {
  const r = spawnSync('/usr/bin/zstd', args, { input: data, maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

test('zstd: what publish compresses, the host zstd and the pure decoder restore, in any chunking', async () => {
  const data = sample(3 << 20);
  const z = await collect(compressStream(from(pieces(data, 100_000)), 'zstd'));
  assert.ok(z.length < data.length, 'it compressed');
  assert.equal(z.readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
  // the host tool agrees it is valid zstd and that the content is ours
  assert.equal(sha(spawnSync('/usr/bin/zstd', ['-d', '-c', '-q'], { input: z, maxBuffer: 1 << 28 }).stdout), sha(data));
  for (const env of [HOST, PURE]) {
    for (const n of [z.length, 1 << 20, 4093]) {
      const got = await withEnv(env, () => collect(decompress(from(pieces(z, n)), 'zstd')));
      assert.equal(got.length, data.length, `${JSON.stringify(env)} pieces of ${n}`);
      assert.equal(sha(got), sha(data), `${JSON.stringify(env)} pieces of ${n}`);
    }
  }
  // one byte at a time through the pure decoder, on a smaller sample: no boundary is special
  const small = sample(50_000, 7);
  const zs = hostZstd(small, ['-c', '-q', '-19']);
  assert.equal(sha(await withEnv(PURE, () => collect(decompress(from(pieces(zs, 1)), 'zstd')))), sha(small));
  // empty content is a valid frame, and decodes to nothing
  assert.equal((await withEnv(PURE, () => collect(decompress(from([hostZstd(Buffer.alloc(0))]), 'zstd')))).length, 0);
  // xz and none are unchanged
  const x = await collect(compressStream(from([data]), 'xz'));
  assert.equal(x.subarray(0, 6).toString('latin1'), '\xfd7zXZ\0');
  assert.equal(sha(await collect(decompress(from([x]), 'xz'))), sha(data));
  assert.equal(sha(await collect(decompress(compressStream(from([data]), 'none'), 'none'))), sha(data));
  assert.equal(narExtension('zstd'), '.nar.zst');
  assert.equal(narExtension('xz'), '.nar.xz');
  assert.equal(narExtension('none'), '.nar');
});

test('zstd: frames one after another, with skippable frames between, decode as one stream on both paths', async () => {
  const a = sample(300_000, 2);
  const b = sample(200_000, 3);
  const c = Buffer.from('the last frame, tiny\n');
  const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18]), Buffer.from([5, 0, 0, 0]), Buffer.from('abcde')]);
  // with and without checksums and content sizes, at different levels
  const cat = Buffer.concat([
    hostZstd(a, ['-c', '-q', '-9']),
    skippable,
    hostZstd(b, ['-c', '-q', '-1', '--no-check']),
    hostZstd(c, ['-c', '-q', '-19', '--content-size']),
  ]);
  const want = sha(Buffer.concat([a, b, c]));
  for (const env of [HOST, PURE]) {
    for (const n of [cat.length, 65_536, 333]) {
      assert.equal(sha(await withEnv(env, () => collect(decompress(from(pieces(cat, n)), 'zstd')))), want, `${JSON.stringify(env)} pieces of ${n}`);
    }
  }
});

test('zstd: corrupt input is an Error that says so, on both paths, and never hangs', { timeout: 60_000 }, async () => {
  const data = sample(200_000, 5);
  const z = hostZstd(data, ['-c', '-q', '-9']);
  const bad: [string, Buffer][] = [
    ['garbage', Buffer.from('this is not zstd at all, not even close')],
    ['empty', Buffer.alloc(0)],
    ['cut inside the header', z.subarray(0, 5)],
    ['cut inside a block', z.subarray(0, Math.floor(z.length / 2))],
    ['cut before the checksum ends', z.subarray(0, z.length - 2)],
    ['trailing garbage', Buffer.concat([z, Buffer.from('junk')])],
    // window descriptor: exponent 31 → a 2 TiB window
    ['a huge window', Buffer.concat([z.subarray(0, 5), Buffer.from([0xf8]), z.subarray(6)])],
    ['a wrong content checksum', Buffer.concat([z.subarray(0, z.length - 4), Buffer.from([z[z.length - 4]! ^ 1]), z.subarray(z.length - 3)])],
    ['the reserved frame header bit', Buffer.concat([z.subarray(0, 4), Buffer.from([z[4]! | 8]), z.subarray(5)])],
  ];
  for (const [what, input] of bad) {
    for (const env of [HOST, PURE]) {
      await assert.rejects(
        withEnv(env, () => collect(decompress(from(pieces(input, 4096)), 'zstd'))),
        (e: unknown) => e instanceof Error && /the zstd stream is corrupt: \S/.test(e.message),
        `${what} (${JSON.stringify(env)})`,
      );
    }
  }
  // the frame walk refuses what fzstd would try to allocate
  const f = new ZstdFrames();
  assert.throws(() => f.scan(Buffer.concat([z.subarray(0, 5), Buffer.from([0xa0])])), new RegExp(`more than the ${ZSTD_MAX_WINDOW}`));
  // random damage: every flipped byte either fails with the message or changes nothing that
  // matters; both decoders check the frame's content checksum
  let seed = 99;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  let noticed = 0;
  const runs = 300;
  for (let k = 0; k < runs; k++) {
    const m = Buffer.from(z);
    const at = rnd(m.length);
    m[at] = m[at]! ^ (1 + rnd(255));
    try {
      const got = await withEnv(PURE, () => collect(decompress(from(pieces(m, 8192)), 'zstd')));
      // a flip the format does not care about (a window size that still suffices, say) is harmless
      assert.equal(sha(got), sha(data), `byte ${at} changed the content and nothing noticed`);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.ok(e instanceof Error && /^the zstd stream is corrupt: \S/.test(e.message), `byte ${at}: ${String(e)}`);
      noticed++;
    }
    if (k % 10 === 0) {
      await assert.rejects(
        withEnv(HOST, () => collect(decompress(from([m]), 'zstd'))),
        (e: unknown) => e instanceof Error && /the zstd stream is corrupt/.test(e.message),
        `host zstd, byte ${at}`,
      );
    }
  }
  assert.ok(noticed > runs * 0.9, `${noticed} of ${runs}`);
});

test('publish compression: auto prefers zstd, then xz, then none; an explicit zstd without a host zstd is refused with the fix', async () => {
  assert.equal(checkCompressionChoice('auto'), 'auto');
  assert.equal(checkCompressionChoice('zstd'), 'zstd');
  assert.throws(() => checkCompressionChoice('bzip2'), /zstd, xz and none/);
  await withEnv({ RELONIX_NO_HOST_ZSTD: undefined, RELONIX_NO_HOST_XZ: undefined }, async () => {
    assert.equal(await resolveCompression('auto'), 'zstd');
    assert.equal(await resolveCompression('xz'), 'xz');
    assert.equal(await resolveCompression('none'), 'none');
  });
  await withEnv({ RELONIX_NO_HOST_ZSTD: '1', RELONIX_NO_HOST_XZ: undefined }, async () => {
    assert.equal(await resolveCompression('auto'), 'xz');
    await assert.rejects(
      () => resolveCompression('zstd'),
      (e: unknown) => e instanceof RelonixError && /zstd/.test(e.message) && /install zstd/.test(e.hint ?? '') && /--compression xz/.test(e.hint ?? ''),
    );
  });
  await withEnv({ RELONIX_NO_HOST_ZSTD: '1', RELONIX_NO_HOST_XZ: '1' }, async () => {
    assert.equal(await resolveCompression('auto'), 'none');
    const notes: string[] = [];
    assert.equal(await resolveCompression('xz', (m) => notes.push(m)), 'none');
    assert.match(notes.join(''), /notice: no xz/);
  });
});
