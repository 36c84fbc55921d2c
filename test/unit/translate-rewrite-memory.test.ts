// A NAR far bigger than the rewriter's memory limit, whose two huge entries swap places once
// renamed, goes through in bounded memory: held back in a spool file, then written in the new order.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { rewriteNar } from '../../src/translate/rewrite.ts';
import { hashOf, type PatternFile, streamNar } from '../helpers/nar-model.ts';

const MiB = 1 << 20;
const FILE = 160 * MiB;

/** Two big files named after hash parts, each naming both store paths every few hundred bytes. */
function files(dir: string, [a, b]: [string, string]): PatternFile[] {
  const noise = Buffer.from(Array.from({ length: 700 }, (_, i) => (i * 131 + 7) & 0xff));
  const pattern = Buffer.concat([noise, Buffer.from(`\0${dir}/${a}-big/lib:${dir}/${b}-big/bin\0${b}`)]);
  return [
    { name: `${a}-big`, size: FILE, pattern },
    { name: `${b}-big`, size: FILE + 3, pattern: Buffer.concat([pattern, Buffer.from('z')]) },
  ];
}

async function sha256(chunks: AsyncIterable<Buffer>, each: () => void = () => undefined): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of chunks) {
    h.update(c);
    size += c.length;
    each();
  }
  return { hex: h.digest('hex'), size };
}

test('a 320 MiB NAR is rewritten and re-sorted with memory that does not grow with it', async (t) => {
  const [A, B] = [hashOf('a'), hashOf('b')];
  const [A2, B2] = [hashOf('y'), hashOf('c')]; // a < b, but y > c: the entries swap
  const hashes = new Map([
    [A, A2],
    [B, B2],
  ]);
  const want = await sha256(streamNar(files('/tmp/store', [A2, B2])));
  global.gc?.();
  const start = process.memoryUsage().rss;
  let peak = start;
  let n = 0;
  const r = rewriteNar(streamNar(files('/nix/store', [A, B])), { fromStoreDir: '/nix/store', toStoreDir: '/tmp/store', hashes });
  const got = await sha256(r.chunks, () => {
    if (++n % 32 === 0) peak = Math.max(peak, process.memoryUsage().rss);
  });
  assert.equal(got.size, want.size);
  assert.ok(got.size > 2 * FILE);
  assert.equal(got.hex, want.hex);
  assert.equal(r.summary.resorted, 1);
  assert.equal(r.summary.spilled, got.size, 'the held-back tree went to a spool file');
  assert.equal(r.summary.output!.hash.toString('hex'), want.hex);
  const grew = (peak - start) / MiB;
  assert.ok(grew < 96, `RSS grew by ${grew.toFixed(0)} MiB while ${(got.size / MiB).toFixed(0)} MiB went through`);
  t.diagnostic(`RSS grew by ${grew.toFixed(1)} MiB for ${(got.size / MiB).toFixed(0)} MiB`);
});
