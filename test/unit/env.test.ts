// The environment a prefix gives (fish and JSON), its managed nix.conf block and the preflight
// plan, computed from facts without running anything.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { estimateNeed, type PreflightFacts, planPreflight, systemFromUrl } from '../../src/bootstrap/stages/preflight.ts';
import { nixVariables, renderEnv, wrapperScript } from '../../src/prefix/environment.ts';
import { layout } from '../../src/prefix/layout.ts';
import { BEGIN, END, mergeNixConf, nixConfBlock } from '../../src/prefix/nix-conf.ts';

test('fish output quotes backslashes and quotes and splits PATH into a list', () => {
  const text = renderEnv({ X: "a'b\\c", PATH: '/p/bin:/usr/bin' }, 'fish');
  assert.equal(text, "set -gx X 'a\\'b\\\\c';\nset -gx PATH '/p/bin' '/usr/bin';\n");
  const json = JSON.parse(renderEnv({ X: 'y' }, 'json'));
  assert.deepEqual(json, { X: 'y' });
});

test('nix.conf: the managed block is replaced in place, user lines are kept, re-applying is stable', () => {
  const block = nixConfBlock({ caches: ['http://127.0.0.1:1/c'], trustedKeys: ['k-1:abc='], journal: 'rollback' });
  assert.match(block, /^sandbox = false$/m);
  assert.match(block, /^build-users-group =$/m);
  assert.deepEqual(
    block.split('\n').filter((l) => l.startsWith('use-sqlite-wal')),
    ['use-sqlite-wal = false'],
  );
  assert.match(block, /^narinfo-cache-negative-ttl = 0$/m);
  assert.match(block, /^substituters = http:\/\/127\.0\.0\.1:1\/c$/m);
  assert.match(block, /^trusted-public-keys = k-1:abc=$/m);
  assert.match(block, /^require-sigs = true$/m);
  const user = 'max-jobs = 4\n';
  const first = mergeNixConf(user, block);
  assert.ok(first.startsWith(BEGIN) && first.endsWith(user));
  const other = nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal' });
  assert.deepEqual(
    other.split('\n').filter((l) => l.startsWith('use-sqlite-wal')),
    ['use-sqlite-wal = true'],
  );
  const second = mergeNixConf(`${first}cores = 2\n`, other);
  assert.equal(second, `${other}\n${user}cores = 2\n`);
  assert.equal(mergeNixConf(second, other), second);
  assert.equal(second.split(END).length, 2, 'one block only');
  assert.match(other, /^substituters =$/m, 'no cache: no substituter, not even cache.nixos.org');
});

test('preflight planning: space, noexec, symlinked prefix and the wrong machine each give a fix', () => {
  const ok: PreflightFacts = {
    prefix: '/tmp/nix',
    realPrefix: '/tmp/nix',
    writable: true,
    executable: true,
    freeBytes: 10 * 2 ** 30,
    fsType: 'ext4',
    hostSystem: 'x86_64-linux',
    tarballSystem: 'x86_64-linux',
    tarballBytes: 20 * 2 ** 20,
  };
  assert.equal(planPreflight(ok).ok, true);
  const full = planPreflight({ ...ok, freeBytes: 20 * 2 ** 20 });
  assert.equal(full.ok, false);
  assert.match(full.problems[0]!.message, /20 MiB free; Nix needs about/);
  assert.equal(full.needBytes, estimateNeed(20 * 2 ** 20));
  assert.equal(estimateNeed(20 * 2 ** 20), 20 * 2 ** 20 * 7 + 64 * 2 ** 20, 'the download, six times it unpacked, and a 64 MiB margin');
  assert.equal(estimateNeed(20 * 2 ** 20, true), estimateNeed(20 * 2 ** 20) - 20 * 2 ** 20, 'unpack asks again with the download already there');
  assert.match(planPreflight({ ...ok, executable: false, execError: 'EACCES' }).problems[0]!.hint, /noexec/);
  assert.match(planPreflight({ ...ok, freeInodes: 900 }).problems[0]!.message, /has 900 inodes free; a bootstrap creates up to 10000/);
  assert.equal(planPreflight({ ...ok, freeInodes: 10_000 }).ok, true);
  assert.match(planPreflight({ ...ok, realPrefix: '/private/tmp/nix' }).problems[0]!.hint, /--prefix \/private\/tmp\/nix/);
  assert.match(planPreflight({ ...ok, tarballSystem: 'aarch64-linux' }).problems[0]!.message, /built for aarch64-linux/);
  assert.equal(systemFromUrl('https://x/nix-2.24.10-aarch64-linux.tar.xz'), 'aarch64-linux');
  assert.equal(systemFromUrl('http://127.0.0.1:1/nix-2.8.0-x86_64-linux.tar.xz?x=1'), 'x86_64-linux');
  assert.equal(systemFromUrl('http://127.0.0.1:1/mine.tar.xz'), undefined);
});

test("the environment names the active Nix's own directories, which a relocated Nix would take from where it was compiled", () => {
  const l = layout('/p/nix');
  const nix = '/p/nix/store/00000000000000000000000000000000-nix-2.8.0';
  const vars = nixVariables(l, { nix, base: { PATH: '/usr/bin:/bin', USER: 'u', HOME: '/h' } });
  assert.equal(vars.NIX_BIN_DIR, `${nix}/bin`);
  assert.equal(vars.NIX_LIBEXEC_DIR, `${nix}/libexec`);
  assert.equal(vars.NIX_DATA_DIR, `${nix}/share`);
  assert.equal(vars.NIX_PROFILE, '/p/nix/var/nix/profiles/default');
  assert.equal(vars.PATH, `/p/nix/var/nix/profiles/default/bin:${nix}/bin:/usr/bin:/bin`);
  // with no MANPATH of its own, a trailing colon keeps man's default pages after the prefix's
  assert.equal(vars.MANPATH, `/p/nix/var/nix/profiles/default/share/man:${nix}/share/man:`);
  assert.equal(
    nixVariables(l, { nix, base: { MANPATH: '/opt/man', USER: 'u', HOME: '/h' } }).MANPATH,
    `/p/nix/var/nix/profiles/default/share/man:${nix}/share/man:/opt/man`,
  );
  // before a Nix is registered, the profile that will hold it
  assert.equal(nixVariables(l, { base: { USER: 'u', HOME: '/h' } }).NIX_BIN_DIR, '/p/nix/var/nix/profiles/default/bin');
  const script = wrapperScript(l, nix, 'nix-store');
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.ok(script.includes(`. ${l.envScript}\n`));
  assert.ok(script.endsWith(`exec ${nix}/bin/nix-store "$@"\n`));
});
