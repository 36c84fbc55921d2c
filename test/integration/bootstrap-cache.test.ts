import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { events, relonix } from '../helpers/cli.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixList, removePrefix } from '../helpers/paths.ts';
import { databaseJournal, walLines } from '../helpers/store.ts';

const prefixes = prefixList();
after(() => prefixes.removeAll());

forEachNix(
  ({ fixture, test }) => {
    const mirror = mirrorFor(fixture);

    test('stage 2 installs the Nix a cache names, and --cache alone restores a wiped prefix', async () => {
      const prefix = await prefixes.add(undefined, 'cache');
      const top = path.dirname(prefix);
      const cacheDir = path.join(top, 'cache');
      const keys = path.join(top, 'keys');
      const r1 = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
      assert.equal(r1.code, 0, r1.stderr);
      const tarballNix = path.join(prefix, 'store', path.basename(mirror.fx.nixPath));

      // "a Nix built for the prefix": here a distinct store path wrapping the relocated one, so that
      // stage 2 has something to substitute that the tarball does not hold
      const expr = path.join(top, 'nix-for-prefix.nix');
      await fs.writeFile(
        expr,
        `let nix = builtins.storePath "${tarballNix}"; in derivation {
  name = "nix-for-prefix"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir -p $out/bin && for f in \${nix}/bin/*; do /bin/ln -s $f $out/bin/; done && /bin/ln -s \${nix}/libexec $out/libexec" ];
}\n`,
      );
      const built = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-build', '--no-out-link', expr]);
      assert.equal(built.code, 0, built.stderr);
      const cacheNix = built.stdout.trim();

      const kg = await relonix(undefined, ['keygen', '--name', 'test-cache-1', '--out', keys]);
      assert.equal(kg.code, 0, kg.stderr);
      const pub = (await fs.readFile(path.join(keys, 'test-cache-1.public'), 'utf8')).trim();
      const published = await relonix(undefined, [
        'publish',
        '--prefix',
        prefix,
        '--to',
        `file://${cacheDir}`,
        '--secret-key',
        path.join(keys, 'test-cache-1.secret'),
        '--as-nix',
        cacheNix,
        '--compression',
        'none',
        '--quiet',
      ]);
      assert.equal(published.code, 0, published.stderr);

      // a restarted host: the prefix is gone; stage 1 from the tarball, stage 2 from the cache
      await removePrefix(prefix);
      const both = await relonix(undefined, [
        'bootstrap',
        '--prefix',
        prefix,
        '--url',
        mirror.url,
        '--cache',
        `file://${cacheDir}`,
        '--trusted-key',
        pub,
        '--json',
      ]);
      assert.equal(both.code, 0, `${both.stdout}\n${both.stderr}`);
      const done = events(both.stdout)
        .filter((e) => e.event === 'stage' && e.status === 'done')
        .map((e) => e.stage);
      assert.deepEqual(done, ['preflight', 'fetch', 'unpack', 'relocate', 'configure', 'register', 'verify', 'cache-nix']);
      let state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
      assert.equal(state.nix, cacheNix, 'the Nix from the cache is the active one');
      assert.equal(state.nixSource, 'cache');
      const profileNix = await fs.realpath(path.join(prefix, 'var/nix/profiles/default/bin/nix'));
      assert.equal(profileNix, await fs.realpath(path.join(cacheNix, 'bin', 'nix')));
      const q = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-store', '-q', '--hash', cacheNix]);
      assert.equal(q.code, 0, `${cacheNix} is valid in the new store: ${q.stderr}`);
      const verify = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
      assert.equal(verify.code, 0, verify.stderr);
      const noop = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--cache', `file://${cacheDir}`, '--trusted-key', pub]);
      assert.match(noop.stdout, /nothing to do/);

      // wiped again: the cache alone brings it back, no tarball
      await removePrefix(prefix);
      const restored = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--cache', `file://${cacheDir}`, '--trusted-key', pub, '--json']);
      assert.equal(restored.code, 0, `${restored.stdout}\n${restored.stderr}`);
      const stages = events(restored.stdout)
        .filter((e) => e.event === 'stage' && e.status === 'done')
        .map((e) => e.stage);
      assert.deepEqual(stages, ['preflight', 'configure', 'restore', 'verify']);
      await assert.rejects(fs.stat(path.join(prefix, 'var/relonix/downloads', path.basename(mirror.fx.tarball))), /ENOENT/);
      state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
      assert.equal(state.nix, cacheNix);
      const build = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-build', '--no-out-link', path.join(prefix, 'var/relonix/check.nix')]);
      assert.equal(build.code, 0, build.stderr);
      // the restore made the database with the journal configure chose for /tmp (a local filesystem), and nix.conf names it
      assert.deepEqual([state.sqliteJournal.journal, state.sqliteJournal.by], ['wal', 'filesystem']);
      assert.deepEqual(walLines(await fs.readFile(path.join(prefix, 'etc/nix/nix.conf'), 'utf8')), ['use-sqlite-wal = true']);
      assert.equal(await databaseJournal(prefix), 'wal');

      // a key the cache did not sign with is refused
      await removePrefix(prefix);
      const wrongKey = await relonix(undefined, [
        'bootstrap',
        '--prefix',
        prefix,
        '--cache',
        `file://${cacheDir}`,
        '--trusted-key',
        `other-1:${Buffer.alloc(32, 7).toString('base64')}`,
      ]);
      assert.notEqual(wrongKey.code, 0);
      assert.match(wrongKey.stderr, /stage restore/);
    });
  },
  { concurrently: true },
);
