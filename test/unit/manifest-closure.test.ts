import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectedClosure, type ManifestEntry } from '../../src/cache/meta.ts';

const entry = (closure: unknown): ManifestEntry => ({ path: '/s/x', publishedAt: '2026-01-01T00:00:00Z', closure }) as ManifestEntry;
const a = '0123456789abcdfghijklmnpqrsvwxyz-nix-2.8.0';
const b = 'zyxwvsrqpnmlkjihgfdcba9876543210-libc6-2.36-9+deb12u14';

test('a manifest closure: each `<hash>-<name>` under the store dir, in the order listed', () => {
  assert.deepEqual(expectedClosure(entry([a, b]), '/tmp/nix/s'), [`/tmp/nix/s/${a}`, `/tmp/nix/s/${b}`]);
});

test('a manifest closure is a hint: what cannot be a store path is passed over, and a missing or odd list is none', () => {
  assert.deepEqual(expectedClosure(entry(undefined), '/s'), []);
  assert.deepEqual(expectedClosure(entry('not a list'), '/s'), []);
  assert.deepEqual(expectedClosure(entry({ 0: a }), '/s'), []);
  // a slash, a walk out of the store, a hash with letters nix-base32 lacks, no name, not a string
  const odd = [`${a}/bin`, `../${a}`, 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x', '0123456789abcdfghijklmnpqrsvwxyz', '0123456789abcdfghijklmnpqrsvwxyz-', 42, null];
  assert.deepEqual(expectedClosure(entry([...odd, b]), '/s'), [`/s/${b}`]);
  // a list longer than any closure is not read at all
  assert.deepEqual(expectedClosure(entry(Array.from({ length: 1000 }, () => a)), '/s').length, 1000);
  assert.deepEqual(expectedClosure(entry(Array.from({ length: 1001 }, () => a)), '/s'), []);
});
