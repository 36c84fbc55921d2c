// One prefix (its store dir outside it) through what a user does to it over time: a Ctrl-C in the
// middle of its bootstrap, a second prefix pointed at its store, a new store dir asked for, packages
// installed and a re-bootstrap from another URL, the demo aimed at it, its environment written to a
// full disk, and at last relonix uninstall. Nothing of the user's is lost on the way.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, promises as fs, openSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Fixture } from '../../src/demo/fixture.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { layout } from '../../src/prefix/layout.ts';
import { withLock } from '../../src/util/lock.ts';
import { asUser, EXIT, eventOf, events, onLines, type RelonixEvent, relonix, spawnRelonix } from '../helpers/cli.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { removePrefix, tempDir } from '../helpers/paths.ts';

const mirror = mirrorFor();
let top: string;
let prefix: string;
let store: string;
let fx: Fixture;

before(async () => {
  top = tempDir('lifecycle');
  prefix = path.join(top, 'nix');
  store = path.join(top, 'store');
  fx = await ensureFixture();
});
after(async () => {
  if (top) await removePrefix(top);
});

const bootstrapArgs = (extra: string[] = []) => ['bootstrap', '--prefix', prefix, '--store-dir', store, '--url', mirror.url, ...extra];
const inPrefix = (script: string) => relonix(undefined, ['run', '--prefix', prefix, '--', 'sh', '-c', script]);

async function listing(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

test('Ctrl-C in the middle of a bootstrap exits 130 with one line saying what was kept, as a JSON event too; the same command continues', async () => {
  const { child, done } = spawnRelonix(undefined, bootstrapArgs(['--json']));
  let sent = false;
  onLines(child.stdout!, (line) => {
    const ev = eventOf(line);
    if (!sent && ev?.event === 'stage' && ev.stage === 'unpack' && ev.status === 'start') {
      sent = true;
      child.kill('SIGINT');
    }
  });
  const r = await done;
  assert.ok(sent, 'the unpack stage started');
  assert.equal(r.code, 130, `${r.stdout.slice(-2000)}\n${r.stderr}`);
  const said = r.stderr.split('\n').filter(Boolean);
  assert.deepEqual(said, [
    'relonix: interrupted by SIGINT: stages preflight, fetch are done and kept; relonix bootstrap, run again, continues at stage unpack',
  ]);
  const last = events(r.stdout).pop();
  assert.deepEqual([last?.event, last?.signal, last?.exitCode], ['interrupted', 'SIGINT', 130]);
  assert.match(String(last?.kept), /stages preflight, fetch are done/);

  const again = await relonix(undefined, bootstrapArgs(['--json']));
  assert.equal(again.code, EXIT.ok, again.stderr);
  const skipped = events(again.stdout).filter((e: RelonixEvent) => e.event === 'stage' && e.status === 'skipped');
  assert.deepEqual(
    skipped.map((e) => e.stage),
    ['preflight', 'fetch'],
  );
});

test("a second prefix pointed at this one's store dir is refused, and so is a new store dir for this prefix; both leave it working", async () => {
  const before = await listing(store);
  const other = await relonix(undefined, ['bootstrap', '--prefix', path.join(top, 'other'), '--store-dir', store, '--url', mirror.url]);
  assert.equal(other.code, EXIT.preflight, other.stderr);
  assert.match(other.stderr, new RegExp(`the store dir ${store} already holds what this prefix's database does not register`));
  assert.match(other.stderr, /fix: give this prefix a store dir of its own/);
  assert.deepEqual(await listing(store), before, 'nothing was added to or removed from the store');

  const stateFile = path.join(prefix, 'var', 'relonix', 'state.json');
  const state = await fs.readFile(stateFile, 'utf8');
  const moved = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--store-dir', path.join(top, 'store2'), '--url', mirror.url]);
  assert.equal(moved.code, EXIT.usage, moved.stderr);
  assert.match(moved.stderr, new RegExp(`was bootstrapped with the store dir ${store}, not ${top}/store2`));
  assert.match(moved.stderr, new RegExp(`relonix uninstall --prefix ${prefix}`));
  assert.equal(await fs.readFile(stateFile, 'utf8'), state, 'the state still records the store dir');
  const verify = await inPrefix('nix-store --verify --check-contents');
  assert.equal(verify.code, EXIT.ok, verify.stderr);
});

test('a re-bootstrap from another --url keeps what the user installed with nix-env; the demo refuses this prefix and leaves it alone', async () => {
  const expr = path.join(top, 'hello.nix');
  await fs.writeFile(
    expr,
    'derivation { name = "hello-relonix-1.0"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "/bin/mkdir -p $out/bin; printf \'#!/bin/sh\\necho hello from the profile\\n\' > $out/bin/hello-relonix; /bin/chmod +x $out/bin/hello-relonix" ]; }\n',
  );
  const install = await inPrefix(`nix-env -f ${expr} -i`);
  assert.equal(install.code, EXIT.ok, install.stderr);

  // the same tarball by another name: every stage runs again, register included
  const again = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', fx.tarball, '--json']);
  assert.equal(again.code, EXIT.ok, again.stderr);
  assert.ok(events(again.stdout).some((e) => e.event === 'stage' && e.stage === 'register' && e.status === 'done'));
  const after = await inPrefix('nix-env -q; hello-relonix; nix-store --version');
  assert.equal(after.code, EXIT.ok, after.stderr);
  assert.match(after.stdout, /^hello-relonix-1\.0$/m, 'the package is still in the profile');
  assert.match(after.stdout, /^nix-2\.8\.0$/m, 'and so is Nix');
  assert.match(after.stdout, /^hello from the profile$/m);

  const stateFile = path.join(prefix, 'var', 'relonix', 'state.json');
  const state = await fs.readFile(stateFile, 'utf8');
  const demo = await relonix(undefined, ['demo', '--prefix', prefix, '--json']);
  assert.equal(demo.code, EXIT.usage, demo.stderr);
  assert.match(demo.stderr, /is a relonix prefix that relonix demo did not make/);
  for (const line of demo.stdout.split('\n').filter(Boolean)) assert.ok(eventOf(line), `only JSON on stdout: ${line}`);
  assert.equal(await fs.readFile(stateFile, 'utf8'), state, 'the demo changed nothing: the source is still the one the user gave');
});

test('the environment written to a full disk (relonix env > /dev/full) is one line on stderr and exit 1', async () => {
  const { cmd, argv } = asUser(undefined, ['env', '--prefix', prefix]);
  const full = openSync('/dev/full', 'w');
  const child = spawn(cmd, argv, { cwd: '/', stdio: ['ignore', full, 'pipe'], env: { PATH: '/usr/bin:/bin' } });
  closeSync(full);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, EXIT.failure, stderr);
  assert.deepEqual(stderr.split('\n').filter(Boolean), [
    'relonix: error: cannot write to stdout: no space left on the device; send the output somewhere it fits',
  ]);
});

test('relonix uninstall refuses what is not a prefix and a prefix in use, then removes the prefix and its store, naming what it removed and what it left', async () => {
  const notOne = path.join(top, 'documents');
  await fs.mkdir(notOne);
  await fs.writeFile(path.join(notOne, 'thesis.tex'), 'x');
  const refused = await relonix(undefined, ['uninstall', '--prefix', notOne]);
  assert.equal(refused.code, EXIT.usage, refused.stderr);
  assert.match(refused.stderr, /is not a relonix prefix: it has no var\/relonix/);
  assert.deepEqual(await listing(notOne), ['thesis.tex']);

  const busy = await withLock(layout(prefix).lockFile, { what: 'a test holding the prefix' }, () => relonix(undefined, ['uninstall', '--prefix', prefix]));
  assert.equal(busy.code, EXIT.busy, busy.stderr);
  assert.ok((await listing(store)).length > 0, 'a busy prefix is left whole');

  await fs.writeFile(path.join(prefix, 'my-notes.txt'), 'mine\n');
  const r = await relonix(undefined, ['uninstall', '--prefix', prefix]);
  assert.equal(r.code, EXIT.ok, r.stderr);
  assert.match(r.stdout, new RegExp(`^removed ${store} \\(the store, \\d+ store paths\\)$`, 'm'));
  assert.match(r.stdout, new RegExp(`^removed ${prefix}/var `, 'm'));
  assert.match(r.stdout, new RegExp(`^left ${prefix} in place: it holds my-notes\\.txt, which relonix did not make$`, 'm'));
  assert.deepEqual(await listing(prefix), ['my-notes.txt']);
  await assert.rejects(fs.access(store), /ENOENT/);
  const gone = await relonix(undefined, ['status', '--prefix', prefix, '--json']);
  assert.equal(JSON.parse(gone.stdout).bootstrapped, false);
});
