// The store's text formats: .reginfo records and store path names, parsed and written back.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatRegInfo, parseRegInfo } from '../../src/store/reginfo.ts';
import { parseStoreBasename } from '../../src/store/storepath.ts';

test('reginfo round-trips and rejects malformed records', () => {
  const text =
    '/nix/store/0a9kkw6x9d1ahzpi7ms1sdqbhn6l0q4y-foo\nsha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\n123\n\n2\n' +
    '/nix/store/0a9kkw6x9d1ahzpi7ms1sdqbhn6l0q4y-foo\n/nix/store/1b9kkw6x9d1ahzpi7ms1sdqbhn6l0q4y-bar\n' +
    '/nix/store/1b9kkw6x9d1ahzpi7ms1sdqbhn6l0q4y-bar\nsha256:0b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\n8\n/nix/store/xxx.drv\n0\n';
  const recs = parseRegInfo(text);
  assert.equal(recs.length, 2);
  assert.deepEqual(recs[0]!.references.length, 2);
  assert.equal(recs[1]!.deriver, '/nix/store/xxx.drv');
  assert.equal(formatRegInfo(recs), text);
  assert.throws(() => parseRegInfo('/nix/store/a\nsha256:x\n'), /truncated, expected a NAR size/);
  assert.throws(() => parseRegInfo('/nix/store/a\nsha256:x\nten\n\n0\n'), /bad NAR size "ten"/);
  assert.throws(() => parseRegInfo('relative\n'), /not an absolute store path/);
});

test('store path names are checked the way Nix checks them', () => {
  const ok = parseStoreBasename('0a9kkw6x9d1ahzpi7ms1sdqbhn6l0q4y-nix-2.8.0');
  assert.equal(ok.name, 'nix-2.8.0');
  assert.throws(() => parseStoreBasename('0a9kkw6x9d1ahzpi7ms1sdqbhn6l0q4e-nix'), /not a store path name/);
  assert.throws(() => parseStoreBasename('short-nix'), /not a store path name/);
  assert.throws(() => parseStoreBasename('0a9kkw6x9d1ahzpi7ms1sdqbhn6l0q4y-bad/name'), /invalid name part/);
});
