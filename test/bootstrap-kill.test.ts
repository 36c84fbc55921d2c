import { listTree } from '../src/util/fs.ts';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ensureFixture, type Fixture } from '../scripts/make-fixture.ts';
import { serveDirectory, type RunningServer } from '../src/net/serve.ts';
import { relonix, prefixFor, removePrefix, spawnRelonix } from './helpers/setpriv.ts';

let fx: Fixture;
let server: RunningServer;
let url: string;
let top: string | undefined;

before(async () => {
  fx = await ensureFixture();
  server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
  url = `${server.url.replace(/\/$/, '')}/${path.basename(fx.tarball)}`;
});

after(async () => {
  await server?.close();
  if (top) await removePrefix(top);
});

// Where to strike: when a stage's start event appears, wait this long, then SIGKILL. Each run
// resumes where the previous one died, so the list walks through every stage.
const STRIKES: [string, number][] = [
  ['fetch', 20],
  ['unpack', 60],
  ['unpack', 700],
  ['relocate', 80],
  ['relocate', 350],
  ['relocate', 650],
  ['configure', 0],
  ['register', 40],
  ['register', 150],
  ['verify', 30],
  ['verify', 150],
];

interface Run {
  killedIn?: string;
  code: number | null;
  events: { event: string; stage?: string; status?: string }[];
}

function strike(prefix: string, stage: string, delay: number): Promise<Run> {
  const { child, done } = spawnRelonix(undefined, ['bootstrap', '--prefix', prefix, '--url', url, '--json']);
  const events: Run['events'] = [];
  let buf = '';
  let killedIn: string | undefined;
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const ev = JSON.parse(line);
        events.push(ev);
        if (ev.event === 'stage' && ev.status === 'start' && ev.stage === stage && !killedIn) {
          killedIn = stage;
          setTimeout(() => child.kill('SIGKILL'), delay);
        }
      } catch {
        // not an event line
      }
    }
  });
  return done.then((r) => ({ killedIn, code: r.code, events }));
}

test('kill -9 at many moments of every stage, then a re-run completes with a store that verifies', async () => {
  const prefix = await prefixFor(undefined, 'kill');
  top = path.dirname(prefix);
  const killed: string[] = [];
  for (const [stage, delay] of STRIKES) {
    const r = await strike(prefix, stage, delay);
    if (r.killedIn && r.code === null) killed.push(`${stage}+${delay}ms`);
    // a run that finished before the blow must have succeeded; one that died must not have lied
    if (r.code !== null) assert.equal(r.code, 0, JSON.stringify(r.events.slice(-3)));
  }
  console.log(`# killed in: ${killed.join(', ')}`);
  assert.ok(killed.length >= 6, `at least 6 runs died by SIGKILL mid-stage (got ${killed.join(', ')})`);
  assert.ok(new Set(killed.map((k) => k.split('+')[0])).size >= 4, 'kills hit at least four different stages');

  const final = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', url]);
  assert.equal(final.code, 0, `${final.stdout}\n${final.stderr}`);
  const verify = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
  assert.equal(verify.code, 0, verify.stderr);
  assert.doesNotMatch(verify.stderr, /modified|corrupt|invalid/i);
  const build = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-build', '--no-out-link', path.join(prefix, 'var/relonix/check.nix')]);
  assert.equal(build.code, 0, build.stderr);

  // every tarball path made it into the store exactly once, and no temporary file leaked into one
  const store = await fs.readdir(path.join(prefix, 'store'));
  for (const p of fx.storePaths) assert.ok(store.includes(path.basename(p)), `${p} relocated`);
  const leftovers = (await listTree(path.join(prefix, 'store'))).filter((f) => /\.tmp$|\.relonix/.test(f));
  assert.deepEqual(leftovers, []);
  const again = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', url]);
  assert.match(again.stdout, /nothing to do/);

  // another --url is another input: every stage runs again over the existing store, which still verifies
  const other = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', `${url}?mirror=2`, '--json']);
  assert.equal(other.code, 0, `${other.stdout}\n${other.stderr}`);
  const ran = other.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.event === 'stage' && e.status === 'done')
    .map((e) => e.stage);
  assert.deepEqual(ran, ['preflight', 'fetch', 'unpack', 'relocate', 'configure', 'register', 'verify']);
});

