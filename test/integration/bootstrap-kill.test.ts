import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { listTree } from '../../src/util/fs.ts';
import { events, relonix, strikeRelonix } from '../helpers/cli.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixList, removePrefix } from '../helpers/paths.ts';

const prefixes = prefixList();
after(() => prefixes.removeAll());

forEachNix(({ fixture, test }) => {
  const mirror = mirrorFor(fixture);

  // Where to strike: when a stage's start event appears, wait that fraction of the stage's length in
  // a reference run on this machine, then SIGKILL. Each run resumes where the previous one died, so
  // the list walks through every stage; fractions rather than fixed delays keep every blow inside its
  // stage however fast the machine is.
  const STRIKES: [string, number][] = [
    ['fetch', 0.3],
    ['unpack', 0.1],
    ['unpack', 0.6],
    ['relocate', 0.15],
    ['relocate', 0.45],
    ['relocate', 0.8],
    ['configure', 0],
    ['register', 0.2],
    ['register', 0.7],
    ['verify', 0.15],
    ['verify', 0.6],
  ];

  interface Run {
    killedIn?: string;
    code: number | null;
    events: { event: string; stage?: string; status?: string }[];
  }

  /** How long each stage takes here: one bootstrap, undisturbed. */
  async function referenceStageMs(prefix: string): Promise<Record<string, number>> {
    const r = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const done = JSON.parse(r.stdout.trim().split('\n').pop()!) as { stageMs: Record<string, number> };
    await removePrefix(prefix);
    return done.stageMs;
  }

  async function strike(prefix: string, stage: string, delay: number): Promise<Run> {
    const r = await strikeRelonix(['bootstrap', '--prefix', prefix, '--url', mirror.url, '--json'], (ev) =>
      ev.event === 'stage' && ev.status === 'start' && ev.stage === stage ? delay : undefined,
    );
    return { killedIn: r.struck ? stage : undefined, code: r.code, events: r.events };
  }

  test('kill -9 at many moments of every stage, then a re-run completes with a store that verifies', async () => {
    const prefix = await prefixes.add(undefined, 'kill');
    const top = path.dirname(prefix);
    const killed: string[] = [];
    const stageMs = await referenceStageMs(path.join(top, 'reference'));
    for (const [stage, fraction] of STRIKES) {
      const r = await strike(prefix, stage, Math.round(fraction * (stageMs[stage] ?? 0)));
      if (r.killedIn && r.code === null) killed.push(`${stage}+${Math.round(fraction * 100)}%`);
      // a run that finished before the blow must have succeeded; one that died must not have lied
      if (r.code !== null) assert.equal(r.code, 0, JSON.stringify(r.events.slice(-3)));
    }
    console.log(`# killed in: ${killed.join(', ')}`);
    assert.ok(killed.length >= 6, `at least 6 runs died by SIGKILL mid-stage (got ${killed.join(', ')})`);
    assert.ok(new Set(killed.map((k) => k.split('+')[0])).size >= 4, 'kills hit at least four different stages');

    const final = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
    assert.equal(final.code, 0, `${final.stdout}\n${final.stderr}`);
    const verify = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.doesNotMatch(verify.stderr, /modified|corrupt|invalid/i);
    const build = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-build', '--no-out-link', path.join(prefix, 'var/relonix/check.nix')]);
    assert.equal(build.code, 0, build.stderr);

    // every tarball path made it into the store exactly once, and no temporary file leaked into one
    const store = await fs.readdir(path.join(prefix, 'store'));
    for (const p of mirror.fx.storePaths) assert.ok(store.includes(path.basename(p)), `${p} relocated`);
    const leftovers = (await listTree(path.join(prefix, 'store'))).filter((f) => /\.tmp$|\.relonix/.test(f));
    assert.deepEqual(leftovers, []);
    const again = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
    assert.match(again.stdout, /nothing to do/);

    // another --url is another input: every stage runs again over the existing store, which still verifies
    const other = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', `${mirror.url}?mirror=2`, '--json']);
    assert.equal(other.code, 0, `${other.stdout}\n${other.stderr}`);
    const ran = events(other.stdout)
      .filter((e) => e.event === 'stage' && e.status === 'done')
      .map((e) => e.stage);
    assert.deepEqual(ran, ['preflight', 'fetch', 'unpack', 'relocate', 'configure', 'register', 'verify']);
  });
});
