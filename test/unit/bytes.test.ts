// indexOfBytes finds what Buffer.indexOf finds, wherever the needle lies: long needles go by their
// first bytes and a comparison of the rest, which must neither miss a match after a false start nor
// read past the end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { indexOfBytes } from '../../src/util/bytes.ts';

/** A small alphabet, so heads match often and most of those are false starts. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = 'ab/c'.charCodeAt((x >>> 16) % 4);
  }
  return b;
}

test('every match Buffer.indexOf finds, from every start, for needles of 1 to 20 bytes', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const hay = noise(300, seed);
    for (let len = 1; len <= 20; len++) {
      // a needle taken from the haystack, so there is at least one match, and one that is not there
      for (const needle of [hay.subarray(seed % 200, (seed % 200) + len), Buffer.concat([hay.subarray(0, len - 1), Buffer.from('z')])]) {
        for (let from = 0; from <= hay.length + 1; from += 7) {
          assert.equal(indexOfBytes(hay, needle, from), hay.indexOf(needle, from), `seed ${seed}, needle ${needle}, from ${from}`);
        }
      }
    }
  }
});

test('a head that matches at the very end is no match, and a whole match at the end is one', () => {
  const needle = Buffer.from('/nix/store');
  assert.equal(indexOfBytes(Buffer.from('xx/nix/sto'), needle), -1);
  assert.equal(indexOfBytes(Buffer.from('xx/nix/st'), needle), -1);
  assert.equal(indexOfBytes(Buffer.from('xx/nix/store'), needle), 2);
  assert.equal(indexOfBytes(Buffer.from('/nix/stor/nix/store'), needle), 9);
  assert.equal(indexOfBytes(Buffer.from('/nix/store'), needle, 1), -1);
});

test('a Uint8Array view is searched within its own bounds', () => {
  const whole = Buffer.from('/nix/store/a /nix/store/b');
  const view = new Uint8Array(whole.buffer, whole.byteOffset + 1, 22);
  assert.equal(indexOfBytes(view, Buffer.from('/nix/store')), 12);
  assert.equal(indexOfBytes(new Uint8Array(whole.buffer, whole.byteOffset + 1, 21), Buffer.from('/nix/store')), -1);
});
