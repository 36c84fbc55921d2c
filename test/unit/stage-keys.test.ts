// The bootstrap's stage keys: all decided from the command line before the first stage runs, each
// chained to the one before, so a changed input re-runs its stage and every stage after it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doneCount, planKeys } from '../../src/bootstrap/engine.ts';
import type { BootstrapContext } from '../../src/bootstrap/stage.ts';
import { planStages } from '../../src/bootstrap/stages/registry.ts';
import { layout } from '../../src/prefix/layout.ts';
import { emptyState } from '../../src/prefix/state.ts';

const l = layout('/tmp/relonix-stage-keys-test');

function ctx(over: Partial<BootstrapContext> = {}): BootstrapContext {
  return {
    layout: l,
    host: 'x86_64-linux',
    tarball: { url: 'https://example.org/nix-2.8.0-x86_64-linux.tar.xz', sha256: 'a'.repeat(64) },
    maxDownloadBytes: 1 << 30,
    caches: [],
    credentials: [],
    trustedKeys: [],
    upstreams: [],
    ...over,
  };
}

/** A state that records every stage as done with these keys. */
function doneWith(c: BootstrapContext) {
  const s = emptyState(l);
  const stages = planStages(c);
  planKeys(c, stages).forEach((key, i) => {
    s.stages[stages[i]!.name] = { doneAt: '2026-01-01T00:00:00.000Z', key };
  });
  return s;
}

test('every stage has a key before any runs, all different, the same for the same inputs', () => {
  const c = ctx();
  const stages = planStages(c);
  const keys = planKeys(c, stages);
  assert.equal(keys.length, stages.length);
  assert.equal(new Set(keys).size, keys.length);
  assert.deepEqual(planKeys(ctx(), planStages(ctx())), keys);
  assert.equal(doneCount(keys, doneWith(c), stages), stages.length);
  assert.equal(doneCount(keys, emptyState(l), stages), 0);
});

test('another tarball re-runs from preflight (which sizes it); another trusted key from configure; every later key changes too', () => {
  const c = ctx();
  const stages = planStages(c);
  const names = stages.map((s) => s.name);
  const before = planKeys(c, stages);
  const state = doneWith(c);

  const other = ctx({ tarball: { url: c.tarball!.url, sha256: 'b'.repeat(64) } });
  const k1 = planKeys(other, planStages(other));
  assert.equal(doneCount(k1, state, stages), 0);
  for (let i = 0; i < stages.length; i++) assert.notEqual(k1[i], before[i], names[i]);

  const cached = ctx({ trustedKeys: ['cache-1:AAAA'] });
  const k2 = planKeys(cached, planStages(cached));
  const configure = names.indexOf('configure');
  assert.equal(doneCount(k2, state, stages), configure);
  for (let i = configure; i < stages.length; i++) assert.notEqual(k2[i], before[i], names[i]);
});

test('a stage recorded with an old key stops the count there, whatever is recorded after it', () => {
  const c = ctx();
  const stages = planStages(c);
  const keys = planKeys(c, stages);
  const state = doneWith(c);
  state.stages.unpack!.key = 'from an older run';
  assert.equal(
    doneCount(keys, state, stages),
    stages.findIndex((s) => s.name === 'unpack'),
  );
  delete state.stages.preflight;
  assert.equal(doneCount(keys, state, stages), 0);
});
