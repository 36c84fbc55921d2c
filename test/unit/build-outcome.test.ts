// How relonix build ends: decided in build/outcome.ts from what the build and its pushes did.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildOutcome } from '../../src/build/outcome.ts';
import { RelonixError } from '../../src/util/errors.ts';

const CACHE = 'http://cache.example';
const base = { code: 0, pending: [] as string[], abandoned: false };

test('build outcome: a signal wins over any status, and says what the cache holds', () => {
  assert.deepEqual(buildOutcome({ ...base, code: 1, signal: 'SIGTERM' }, CACHE), {
    signal: 'SIGTERM',
    kept: `every derivation that had finished is in ${CACHE}; the builds that were running are lost; the same command goes on from there`,
  });
  const one = buildOutcome({ ...base, pending: ['/s/a.drv'], signal: 'SIGINT' }, CACHE);
  assert.ok('signal' in one && one.kept.startsWith(`1 finished derivation not in ${CACHE} yet stays queued`), JSON.stringify(one));
});

test("build outcome: with every push done, nix-build's own status", () => {
  assert.deepEqual(buildOutcome(base, CACHE), { exitCode: 0 });
  assert.deepEqual(buildOutcome({ ...base, code: 100 }, CACHE), { exitCode: 100 });
});

test('build outcome: pushes owed behind a failed build are said in passing; behind a good one they are a network error', () => {
  const failed = buildOutcome({ ...base, code: 1, pending: ['/s/a.drv', '/s/b.drv'], abandoned: true }, CACHE);
  assert.deepEqual(failed, {
    exitCode: 1,
    note: `2 built derivations are not in ${CACHE} yet (the grace period ran out); they stay queued, and the next relonix build pushes them first`,
  });
  const cause = new RelonixError('HTTP 503', { kind: 'network' });
  const owed = buildOutcome({ ...base, pending: ['/s/a.drv'], pushError: cause }, CACHE);
  assert.ok('error' in owed);
  assert.equal(owed.error.kind, 'network');
  assert.equal(owed.error.message, `1 built derivation is not in ${CACHE} yet (HTTP 503); they stay queued, and the next relonix build pushes them first`);
  assert.equal(owed.error.cause, cause);
  assert.match(owed.error.hint ?? '', /relonix status lists the queue/);
});

test("build outcome: a build whose derivations are all pushed but whose outputs' closures are not is a network error too", () => {
  const cause = new RelonixError('PUT http://cache.example/nar/x.nar: HTTP 503', { kind: 'network' });
  const owed = buildOutcome({ ...base, pushError: cause }, CACHE);
  assert.ok('error' in owed, JSON.stringify(owed));
  assert.equal(owed.error.kind, 'network');
  assert.match(owed.error.message, /^the outputs' closures are not all in http:\/\/cache\.example \(PUT .*HTTP 503\)/);
  assert.equal(owed.error.cause, cause);
  // behind a failed build, the build's status is the news, as for owed derivations
  assert.deepEqual(buildOutcome({ ...base, code: 1, pushError: cause }, CACHE), { exitCode: 1 });
});
