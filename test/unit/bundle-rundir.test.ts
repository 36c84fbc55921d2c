// The run dir a bundle is rewritten for, and the rewrite itself, on bytes: as long as the store dir,
// chosen by what the bundle holds, every reference replaced in place wherever the chunks are cut.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rewriteStoreDir } from '../../src/bundle/rewrite.ts';
import { defaultRunDir } from '../../src/bundle/rundir.ts';
import { rewriteRefs } from '../../src/store/relocate-text.ts';
import { isKind } from '../../src/util/errors.ts';

test('a run dir is /tmp/ and as many characters as the store dir is long, drawn from the seed', () => {
  const ten = defaultRunDir('/tmp/nix/s', 'closure A');
  assert.match(ten, /^\/tmp\/[0-9a-df-np-sv-z]{5}$/);
  assert.equal(defaultRunDir('/tmp/nix/s', 'closure A'), ten, 'the same closure, the same run dir');
  assert.notEqual(defaultRunDir('/tmp/nix/s', 'closure B'), ten, 'another closure, another run dir');
  for (const storeDir of ['/nix/store', '/tmp/nix/store', '/ab/cd', `/${'x'.repeat(200)}`, `/${'y'.repeat(259)}`]) {
    const dir = defaultRunDir(storeDir, 'seed');
    assert.equal(dir.length, storeDir.length, storeDir);
    assert.ok(dir.startsWith('/tmp/'));
    assert.match(dir.slice(5), /^[0-9a-z]+$/);
  }
});

test('a run dir is never the store dir itself', () => {
  // the store dir that the first choice for this seed would be: the second choice is taken
  const first = defaultRunDir('/tmp/store', 'seed');
  const again = defaultRunDir(first, 'seed');
  assert.notEqual(again, first);
  assert.equal(again.length, first.length);
});

test('a store dir too short or too long for a run dir under /tmp is a usage error that says why', () => {
  for (const storeDir of ['/a', '/tmp', '/abcd', `/${'z'.repeat(260)}`]) {
    assert.throws(
      () => defaultRunDir(storeDir, 'seed'),
      (e: unknown) => isKind(e, 'usage') && e.message.includes(`${storeDir.length} bytes`) && /6 to 260/.test(e.message),
      storeDir,
    );
  }
});

async function rewriteChunked(input: Buffer, cuts: number[], from: string, to: string): Promise<{ out: Buffer; offsets: number[] }> {
  const chunks: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, input.length]) {
    chunks.push(input.subarray(at, c));
    at = c;
  }
  const offsets: number[] = [];
  const parts: Buffer[] = [];
  for await (const b of rewriteStoreDir(
    (async function* () {
      yield* chunks;
    })(),
    from,
    to,
    offsets,
  ))
    parts.push(b);
  return { out: Buffer.concat(parts), offsets };
}

test('the store dir is rewritten in place wherever the chunks are cut, and each place is noted', async () => {
  const from = '/tmp/nix/s';
  const to = '/tmp/0y7gn';
  const h = '0c6l5hhy7lrhlfzxjx6bf0xqmnhz8gzi';
  const input = Buffer.concat([
    Buffer.from(`#!${from}/${h}-sh/bin/sh\n`),
    Buffer.from([0, 1, 2]),
    Buffer.from(`${from}\0${from}/share kept: /tmp/nix/share ${from}x -L${from}/${h}-lib/lib`),
    Buffer.from(from),
  ]);
  const whole = rewriteRefs(input, from, to)!;
  const expected: number[] = [];
  for (let i = whole.out.indexOf(to); i >= 0; i = whole.out.indexOf(to, i + 1)) expected.push(i);
  assert.equal(whole.count, 5);
  assert.equal(expected.length, 5);
  assert.ok(whole.out.includes(' /tmp/nix/share ') && whole.out.includes(`${from}x`), 'a longer name that starts with the store dir stays');
  for (let a = 0; a <= input.length; a++) {
    for (const b of [a, a + 1, a + 7, a + 10, a + 11]) {
      const cuts = [a, Math.min(b, input.length)].filter((c, i, all) => i === 0 || c > all[i - 1]!);
      const r = await rewriteChunked(input, cuts, from, to);
      assert.deepEqual(r.out, whole.out, `cut at ${cuts}`);
      assert.deepEqual(r.offsets, expected, `cut at ${cuts}`);
    }
  }
  const one = await rewriteChunked(input, [...Array(input.length).keys()].slice(1), from, to);
  assert.deepEqual(one.out, whole.out, 'one byte a chunk');
});

test('store dirs of different lengths are refused: nothing can be replaced in place', async () => {
  await assert.rejects(rewriteChunked(Buffer.from('x'), [], '/nix/store', '/tmp/abc'), /differ in length/);
});
