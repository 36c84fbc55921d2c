import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NarInfo } from '../../src/cache/narinfo.ts';
import { lanes } from '../../src/cache/restore.ts';
import type { Item } from '../../src/cache/restore-nar.ts';
import type { CacheTarget } from '../../src/cache/targets.ts';

const target = { url: 'file:///c' } as CacheTarget;
const item = (name: string, fileSize: number | undefined, narSize = 1000): Item => ({
  ni: { storePath: `/s/${name}`, fileSize, narSize } as NarInfo,
  target,
});
const names = (qs: Item[][]) => qs.map((q) => q.map((it) => it.ni.storePath.slice(3)));

test('restore lanes: each NAR, largest first, goes to the share with the fewest compressed bytes so far', () => {
  const items = [item('a', 90), item('b', 50), item('c', 40), item('d', 30), item('e', 10), item('f', 5)];
  // a 90 | b 50, c → 90 | 90, d (a tie: the first) → 120 | 90, e → 120 | 100, f → 120 | 105
  assert.deepEqual(names(lanes(items, 2)), [
    ['a', 'd'],
    ['b', 'c', 'e', 'f'],
  ]);
  // every NAR once, in the order it came
  assert.deepEqual(names(lanes(items, 3)), [['a'], ['b', 'e', 'f'], ['c', 'd']]);
});

test('restore lanes: no empty share when there are fewer NARs than lanes; NarSize stands in for a missing FileSize', () => {
  assert.deepEqual(names(lanes([item('a', 5)], 4)), [['a']]);
  assert.deepEqual(names(lanes([], 2)), []);
  // b has no FileSize: its NarSize (100) counts, so c goes beside a
  assert.deepEqual(names(lanes([item('a', 60), item('b', undefined, 100), item('c', 30)], 2)), [['a', 'c'], ['b']]);
});
