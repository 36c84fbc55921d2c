// The harness really hides the host's Nix: inside it, every /usr/bin/nix* is a tripwire that records
// its use and fails, and the host's Nix libraries and libexec are gone.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { NOBODY_UID } from '../helpers/cli.ts';
import { hostNixPrograms, withoutHostNix } from '../helpers/hide-nix.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

requireRoot('a private mount namespace');
requireTool('nix-store', 'nix-bin');

test('the tripwire fires: host Nix programs fail with 127 and are recorded; its libraries are gone', () => {
  const log = path.join(os.tmpdir(), `relonix-tripwire-proof-${process.pid}.log`);
  rmSync(log, { force: true });
  assert.ok(hostNixPrograms().includes('/usr/bin/nix-store'), 'the test machine has a Nix to hide');
  const script = 'nix-store --version; echo "store=$?"; /usr/bin/nix --version; echo "nix=$?"; ls -A /usr/lib/nix /usr/libexec/nix; echo "ls=$?"';
  const argv = withoutHostNix(
    ['setpriv', `--reuid=${NOBODY_UID}`, `--regid=${NOBODY_UID}`, '--clear-groups', 'env', '-i', 'PATH=/usr/bin:/bin', 'sh', '-c', script],
    log,
  );
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /store=127/);
  assert.match(r.stdout, /nix=127/);
  assert.match(r.stdout, /ls=0/);
  // both directories listed, both empty
  assert.doesNotMatch(r.stdout, /libnix|build-remote/);
  assert.match(r.stderr, /tripwire: the host's Nix/);
  const fired = readFileSync(log, 'utf8');
  assert.match(fired, /ran \/usr\/bin\/nix-store --version/);
  assert.match(fired, /ran \/usr\/bin\/nix --version/);
  rmSync(log, { force: true });
  // outside the namespace nothing changed: the oracles still have their Nix
  const outside = spawnSync('/usr/bin/nix-store', ['--version'], { encoding: 'utf8' });
  assert.equal(outside.status, 0, outside.stderr);
  assert.ok(existsSync('/usr/libexec/nix/build-remote'));
});
