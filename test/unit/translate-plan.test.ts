// What a translation publishes, planned from a closure Nix evaluated at /tmp/store (the prefix) and
// narinfos of the /nix/store twins (upstream): what upstream has is translated with every reference
// it names, what it lacks is built, and a path that would name something unserved is not published.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { NarInfo } from '../../src/cache/narinfo.ts';
import { parseDerivation } from '../../src/store/aterm.ts';
import { planDerivations, planPaths } from '../../src/translate/plan.ts';
import { type Closure, computeTwins } from '../../src/translate/twin.ts';
import { NIX_STORE_DRVS, NIX_STORE_SOURCES, TMP_STORE_DRVS } from './translate-vectors.ts';

const HELLO = '/tmp/store/irisp33alladxfxqmbdq4a9gacl607jx-hello.txt';
const NOTE = '/tmp/store/bcss8q0qa7s09xva7g3yzh6z34v5x0gg-note.txt';
const TOP = '/tmp/store/s3r57r0vc30m8nnh70r38prw1rddvzp9-top.drv';

/** The prefix's closure: what Nix wrote at /tmp/store for the vectors' expression. */
function prefixClosure(): Closure {
  const derivations = new Map(Object.entries(TMP_STORE_DRVS).map(([p, t]) => [p, parseDerivation(Buffer.from(t, 'latin1'))]));
  const hex = '34ca3ac63094d1d5751f741101692a78f95eedf10744b088129fc324dfd0f603';
  return {
    storeDir: '/tmp/store',
    derivations,
    sources: new Map([
      [HELLO, { kind: 'fixed', method: 'recursive', algo: 'sha256', hex }],
      [NOTE, { kind: 'text', text: Buffer.from(`see ${HELLO}\n`), references: [HELLO] }],
    ]),
  };
}

/** Output paths of the vectors' /nix/store derivations, by name: what upstream built. */
const UPSTREAM = new Map(
  Object.values(NIX_STORE_DRVS).flatMap((t) =>
    parseDerivation(Buffer.from(t, 'latin1')).outputs.map((o) => [path.basename(o.path).slice(33), o.path] as const),
  ),
);

function narInfo(name: string, references: string[]): NarInfo {
  return {
    storePath: UPSTREAM.get(name)!,
    url: `nar/${name}.nar`,
    compression: 'none',
    narHash: `sha256:${'0'.repeat(52)}`,
    narSize: 100,
    references: references.map((r) => path.basename(r)),
    sigs: [],
  };
}

const ours = (name: string) => [...prefixClosure().derivations.values()].flatMap((d) => d.outputs).find((o) => path.basename(o.path).slice(33) === name)!.path;

test('derivation mode: what upstream has is translated under our hashes; what it lacks, and what needs that, is built', () => {
  const closure = prefixClosure();
  const twins = computeTwins(closure, '/nix/store', { partial: true });
  const up = (name: string, refs: string[] = []) => [UPSTREAM.get(name)!, narInfo(name, refs)] as const;
  const upstream = new Map([
    up('flat'),
    up('multi', [UPSTREAM.get('multi-dev')!]),
    up('multi-dev', [UPSTREAM.get('multi-dev')!]),
    // rec1 is not upstream, and top needs it
    up('top', [UPSTREAM.get('multi')!, UPSTREAM.get('rec1')!, NIX_STORE_SOURCES.hello.path]),
  ]);
  const plan = planDerivations({ storeDir: '/tmp/store', closure, twins, upstream, present: new Set([ours('multi-lib')]) });
  assert.deepEqual(plan.present, [ours('multi-lib')]);
  assert.deepEqual(plan.missing, [ours('rec1')]);
  assert.deepEqual(plan.refused, [{ path: ours('top'), why: `it needs ${ours('rec1')}, which is neither in the target nor translatable` }]);
  const byPath = new Map(plan.items.map((it) => [it.path, it]));
  assert.deepEqual([...byPath.keys()].sort(), [ours('flat'), ours('multi'), ours('multi-dev')].sort());
  assert.equal(byPath.get(ours('flat'))!.verbatim, true, 'a fixed output is copied as it is');
  const multi = byPath.get(ours('multi'))!;
  assert.equal(multi.verbatim, false);
  assert.deepEqual(multi.references, [ours('multi-dev')]);
  assert.equal(multi.deriver, '/tmp/store/lrqs458drl7gfvch3153mkm7w9250fh7-multi.drv');
  const hashOf = (p: string) => path.basename(p).slice(0, 32);
  assert.deepEqual(
    [...multi.hashes],
    [
      [hashOf(UPSTREAM.get('multi')!), hashOf(ours('multi'))],
      [hashOf(UPSTREAM.get('multi-dev')!), hashOf(ours('multi-dev'))],
    ],
  );
  assert.deepEqual(plan.sources, [], 'only what a published path names is published');
});

test('derivation mode: a source a translated path names is published; a reference outside the evaluation, or a derivation with no twin, is not translated', () => {
  const closure = prefixClosure();
  const twins = computeTwins(closure, '/nix/store', { partial: true });
  const stranger = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-stranger';
  const upstream = new Map([
    [UPSTREAM.get('top')!, narInfo('top', [NIX_STORE_SOURCES.hello.path])],
    [UPSTREAM.get('multi')!, narInfo('multi', [stranger])],
  ]);
  const plan = planDerivations({ storeDir: '/tmp/store', closure, twins, upstream, present: new Set() });
  assert.deepEqual(
    plan.items.map((it) => it.path),
    [ours('top')],
  );
  assert.deepEqual(plan.items[0]!.references, [HELLO]);
  assert.deepEqual(plan.sources, [HELLO]);
  assert.deepEqual(plan.refused, [
    { path: ours('multi'), why: `upstream's build names 0123456789abcdfghijklmnpqrsvwxyz-stranger, which is not part of this evaluation` },
  ]);

  const floating = prefixClosure();
  const top = floating.derivations.get(TOP)!;
  floating.derivations.set(TOP, { ...top, env: [['__contentAddressed', '1'], ...top.env] });
  const partial = computeTwins(floating, '/nix/store', { partial: true });
  const p2 = planDerivations({ storeDir: '/tmp/store', closure: floating, twins: partial, upstream, present: new Set() });
  assert.equal(p2.refused[0]!.path, TOP);
  assert.match(p2.refused[0]!.why, /__contentAddressed/);
  assert.ok(!p2.items.some((it) => it.path === ours('top')));
});

test("path mode: upstream's closure in our store dir, each hash part kept, what the target has skipped", () => {
  const lib = narInfo('multi-lib', []);
  const dev = narInfo('multi-dev', [UPSTREAM.get('multi-lib')!, UPSTREAM.get('multi-dev')!]);
  const moved = (p: string) => path.join('/app/store', path.basename(p));
  const plan = planPaths(
    '/app/store',
    new Map([
      [dev.storePath, { ...dev, deriver: 'jqjgkdvfds8sr3cpqkvqr72v28klkzis-multi.drv' }],
      [lib.storePath, lib],
    ]),
    new Set([moved(lib.storePath)]),
  );
  assert.deepEqual(plan.present, [moved(lib.storePath)]);
  assert.equal(plan.items.length, 1);
  const it = plan.items[0]!;
  assert.equal(it.path, moved(dev.storePath));
  assert.deepEqual(it.references, [moved(UPSTREAM.get('multi-lib')!), moved(UPSTREAM.get('multi-dev')!)]);
  assert.equal(it.deriver, '/app/store/jqjgkdvfds8sr3cpqkvqr72v28klkzis-multi.drv');
  assert.equal(it.hashes.size, 0, 'only the store dir changes');
  assert.deepEqual(plan.refused, []);

  // a compression relonix does not read leaves the path, and what needs it, to be built
  const old = planPaths(
    '/app/store',
    new Map([
      [dev.storePath, dev],
      [lib.storePath, { ...lib, compression: 'bzip2' }],
    ]),
    new Set(),
  );
  assert.deepEqual(old.items, []);
  assert.deepEqual(
    old.refused.map((r) => r.path),
    [moved(lib.storePath), moved(dev.storePath)],
  );
  assert.match(old.refused[0]!.why, /bzip2/);
});
