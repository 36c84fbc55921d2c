import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { layout } from '../../src/prefix/layout.ts';
import { withLock } from '../../src/util/lock.ts';
import { EXIT, NOBODY_UID, relonix, relonixAs, shAs, spawnRelonix } from '../helpers/cli.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { forEachNix, hookLineWithoutBuilders } from '../helpers/nixes.ts';
import { prefixFor, prefixList, RELONIX } from '../helpers/paths.ts';
import { databaseJournal, walLines } from '../helpers/store.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

before(() => {
  requireTool('setpriv', 'util-linux');
  requireRoot('it switches to uid 4242 with setpriv and mounts a tmpfs');
});
const prefixes = prefixList();
after(() => prefixes.removeAll());

/** Filesystems `stat -f` names that give SQLite's WAL what it needs (ext4 reads ext2/ext3). */
const LOCAL_FS = ['ext2/ext3', 'xfs', 'btrfs', 'tmpfs'];

forEachNix(
  ({ fixture, test }) => {
    const mirror = mirrorFor(fixture);

    test('a uid with no passwd entry and an empty environment bootstraps, builds and verifies', async () => {
      const prefix = await prefixes.add(NOBODY_UID, 'e2e');
      const r = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
      assert.equal(r.code, 0, `bootstrap failed:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /Nix is ready in/);
      const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
      assert.equal(state.nix, path.join(prefix, 'store', path.basename(mirror.fx.nixPath)));
      for (const s of ['preflight', 'fetch', 'unpack', 'relocate', 'configure', 'register', 'verify']) assert.ok(state.stages[s], `stage ${s} recorded`);
      // no builders: the Nix runs no build hook of its own (2.8: one of the prefix that declines every build)
      const conf = (await fs.readFile(path.join(prefix, 'etc/nix/nix.conf'), 'utf8')).split('\n');
      assert.deepEqual(
        conf.filter((l) => l.startsWith('build-hook')),
        [hookLineWithoutBuilders(fixture, prefix)],
      );
      // everything under the prefix belongs to the unprivileged uid
      assert.equal((await fs.stat(path.join(prefix, 'store'))).uid, NOBODY_UID);
      // /tmp is a local filesystem: the database was made with SQLite's write-ahead log
      assert.ok(LOCAL_FS.includes(execFileSync('stat', ['-f', '-c', '%T', prefix]).toString().trim()), 'the prefix is on a local filesystem');
      assert.deepEqual(walLines(conf.join('\n')), ['use-sqlite-wal = true']);
      assert.equal(await databaseJournal(prefix), 'wal');
      assert.equal(state.sqliteJournal.journal, 'wal');
      assert.equal(state.sqliteJournal.by, 'filesystem');

      const expr = path.join(path.dirname(prefix), 'hello.nix');
      await fs.writeFile(
        expr,
        'derivation { name = "hello-4242"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo hi from $USER > $out" ]; }\n',
      );
      await fs.chmod(expr, 0o644);
      const build = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-build', '--no-out-link', expr]);
      assert.equal(build.code, 0, build.stderr);
      const out = build.stdout.trim();
      assert.ok(out.startsWith(`${path.join(prefix, 'store')}/`), out);
      assert.match(await fs.readFile(out, 'utf8'), /^hi from/);

      const verify = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
      assert.equal(verify.code, 0, verify.stderr);
      const exit = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'sh', '-c', 'exit 42']);
      assert.equal(exit.code, 42, 'run passes the exit code through');
      // a signal sent to relonix reaches the command
      const trapped = spawnRelonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'sh', '-c', 'trap "exit 9" TERM; echo ready; while :; do sleep 0.1; done']);
      await new Promise<void>((resolve) => trapped.child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
      trapped.child.kill('SIGTERM');
      assert.equal((await trapped.done).code, 9, 'SIGTERM was forwarded and the exit code of the trap came back');

      const shell = await shAs(
        NOBODY_UID,
        `set -e; eval "$(${process.execPath} ${RELONIX} env --prefix ${prefix})"; echo "user=$USER home=$HOME"; nix --version; nix-build --no-out-link ${expr}; nix-instantiate --eval -E builtins.storeDir`,
      );
      assert.equal(shell.code, 0, shell.stderr);
      assert.match(shell.stdout, new RegExp(`user=uid${NOBODY_UID} home=${prefix}/home`));
      assert.ok(shell.stdout.includes(`nix (Nix) ${mirror.fx.version}\n`), shell.stdout);
      assert.ok(shell.stdout.includes(`"${prefix}/store"`), shell.stdout);

      // the sourced profile script works too, in a shell that has a PATH of its own
      const sourced = await shAs(NOBODY_UID, `. ${prefix}/etc/profile.d/relonix.sh && command -v nix-store && nix-store -q --references ${out}`);
      assert.equal(sourced.code, 0, sourced.stderr);

      // a re-run after success is a no-op that says so: it asks the mirror nothing, needs no lock (it
      // answers while another holds the prefix) and rewrites nothing
      const stateFile = path.join(prefix, 'var/relonix/state.json');
      const [stateBefore, storeBefore] = await Promise.all([fs.stat(stateFile), fs.stat(path.join(prefix, 'store'))]);
      const asked = mirror.log.length;
      const again = await withLock(layout(prefix).lockFile, { what: 'a test holding the prefix' }, () =>
        relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url]),
      );
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /already bootstrapped.*nothing to do/);
      assert.deepEqual(mirror.log.slice(asked), [], 'the no-op re-run made no request');
      const [stateAfter, storeAfter] = await Promise.all([fs.stat(stateFile), fs.stat(path.join(prefix, 'store'))]);
      assert.deepEqual([stateAfter.ino, stateAfter.mtimeMs], [stateBefore.ino, stateBefore.mtimeMs], 'the state file was not rewritten');
      assert.equal(storeAfter.mtimeMs, storeBefore.mtimeMs, 'nothing was added to or removed from the store');

      const status = await relonix(NOBODY_UID, ['status', '--prefix', prefix, '--json']);
      assert.equal(status.code, 0, status.stderr);
      const st = JSON.parse(status.stdout);
      assert.equal(st.bootstrapped, true);
      assert.equal(st.nix, state.nix);
      assert.ok(st.relocation.counts.elfPatched > 10, 'the ELF files of the closure were patched');
      assert.ok(st.store.paths >= mirror.fx.storePaths.length);
      assert.deepEqual([st.database.exists, st.database.journal, st.database.fsType], [true, 'wal', state.sqliteJournal.fsType]);
      const text = await relonix(NOBODY_UID, ['status', '--prefix', prefix]);
      assert.match(text.stdout, new RegExp(`^database   WAL journal \\(${state.sqliteJournal.fsType}\\)$`, 'm'));

      const fish = await relonix(NOBODY_UID, ['env', '--prefix', prefix, '--shell', 'fish']);
      assert.match(fish.stdout, new RegExp(`set -gx NIX_STORE_DIR '${prefix}/store';`));
      const json = JSON.parse((await relonix(NOBODY_UID, ['env', '--prefix', prefix, '--shell', 'json'])).stdout);
      assert.equal(json.NIX_STATE_DIR, `${prefix}/var/nix`);
      assert.equal(json.USER, `uid${NOBODY_UID}`);
    });

    test('a database made with the rollback journal (on overlay) keeps it when the prefix is bootstrapped again elsewhere, and after relonix build', async () => {
      const prefix = await prefixes.add(NOBODY_UID, 'journal');
      const top = path.dirname(prefix);
      for (const d of [prefix, `${top}/lower`, `${top}/work`]) await fs.mkdir(d);
      await fs.chown(prefix, NOBODY_UID, NOBODY_UID);
      // the prefix seen through an overlay (its upper layer the prefix itself, so what is written stays there)
      const overlay = `mount -t overlay overlay -o lowerdir=${top}/lower,upperdir=${prefix},workdir=${top}/work ${prefix}`;
      const first = await relonixAs(['bootstrap', '--prefix', prefix, '--url', mirror.url], { uid: NOBODY_UID, setup: overlay });
      assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
      assert.match(first.stdout, /rollback journal \(overlay: WAL needs shared memory and locks it may not give\)/);
      const conf = () => fs.readFile(path.join(prefix, 'etc/nix/nix.conf'), 'utf8');
      const stateFile = path.join(prefix, 'var/relonix/state.json');
      const state = async () => JSON.parse(await fs.readFile(stateFile, 'utf8'));
      assert.deepEqual(walLines(await conf()), ['use-sqlite-wal = false']);
      assert.equal(await databaseJournal(prefix), 'rollback');
      assert.deepEqual((await state()).sqliteJournal, { journal: 'rollback', fsType: 'overlay', by: 'filesystem' });

      // the same prefix outside the overlay, on ext4, bootstrapped again with another input: configure
      // runs again and keeps the journal the database was made with
      const keys = path.join(top, 'keys');
      assert.equal((await relonix(undefined, ['keygen', '--name', 'journal-1', '--out', keys])).code, 0);
      const pub = (await fs.readFile(path.join(keys, 'journal-1.public'), 'utf8')).trim();
      const again = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--trusted-key', pub]);
      assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`);
      assert.match(await conf(), new RegExp(`^trusted-public-keys = ${pub.replace(/[+/]/g, '\\$&')}`, 'm'), 'nix.conf was rewritten');
      assert.deepEqual(walLines(await conf()), ['use-sqlite-wal = false']);
      assert.equal(await databaseJournal(prefix), 'rollback');
      const status = await relonix(NOBODY_UID, ['status', '--prefix', prefix]);
      assert.match(status.stdout, /^database {3}rollback journal \(overlay: /m);

      // a prefix an older relonix made records no journal: its database keeps the rollback journal
      const old = await state();
      delete old.sqliteJournal;
      await fs.writeFile(stateFile, JSON.stringify(old));
      const expr = path.join(top, 'journal.nix');
      await fs.writeFile(expr, 'derivation { name = "journal"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo j > $out" ]; }\n');
      await fs.chmod(expr, 0o644);
      await fs.mkdir(path.join(top, 'cache'));
      await fs.chown(path.join(top, 'cache'), NOBODY_UID, NOBODY_UID);
      await fs.chmod(keys, 0o755);
      await fs.chown(path.join(keys, 'journal-1.secret'), NOBODY_UID, NOBODY_UID);
      const secret = path.join(keys, 'journal-1.secret');
      const build = await relonix(NOBODY_UID, [
        'build',
        '--prefix',
        prefix,
        '--cache',
        `file://${top}/cache`,
        '--secret-key',
        secret,
        '--',
        '--no-out-link',
        expr,
      ]);
      assert.equal(build.code, 0, `${build.stdout}\n${build.stderr}`);
      const again2 = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
      assert.equal(again2.code, 0, `${again2.stdout}\n${again2.stderr}`);
      assert.deepEqual(walLines(await conf()), ['use-sqlite-wal = false']);
      assert.equal(await databaseJournal(prefix), 'rollback');
      const json = JSON.parse((await relonix(NOBODY_UID, ['status', '--prefix', prefix, '--json'])).stdout);
      assert.deepEqual([json.database.journal, json.database.by], ['rollback', 'database']);
      const verify = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
      assert.equal(verify.code, 0, verify.stderr);
    });

    test('a wrong --sha256 fails naming the checksum and leaves no store behind', async () => {
      const prefix = await prefixes.add(NOBODY_UID, 'badsum');
      const wrong = mirror.fx.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      const r = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--sha256', wrong]);
      assert.notEqual(r.code, 0);
      assert.equal(r.code, EXIT.integrity, r.stderr);
      assert.match(r.stderr, /sha256|checksum/i);
      assert.match(r.stderr, /stage fetch/);
      await assert.rejects(fs.stat(path.join(prefix, 'store')), /ENOENT/);
      await assert.rejects(fs.stat(path.join(prefix, 'var/relonix/staging')), /ENOENT/);
    });

    test('a prefix on a nearly full filesystem is refused in preflight before anything big is written', async () => {
      const top = await prefixFor(undefined, 'full');
      const mnt = path.dirname(top);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mnt]);
      try {
        const r = await relonix(undefined, ['bootstrap', '--prefix', path.join(mnt, 'nix'), '--url', mirror.url]);
        assert.equal(r.code, EXIT.preflight, `${r.stdout}\n${r.stderr}`);
        assert.match(r.stderr, /MiB free/);
        assert.match(r.stderr, /stage preflight/);
        const used = Number(execFileSync('du', ['-sk', mnt]).toString().split('\t')[0]);
        assert.ok(used < 1024, `only ${used} KiB may be written`);
      } finally {
        execFileSync('umount', [mnt]);
        await fs.rm(mnt, { recursive: true, force: true });
      }
    });

    test('a prefix on a noexec filesystem is refused in preflight, saying why', async () => {
      const top = await prefixFor(undefined, 'noexec');
      const mnt = path.dirname(top);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=400m,noexec', 'tmpfs', mnt]);
      try {
        const r = await relonix(undefined, ['bootstrap', '--prefix', path.join(mnt, 'nix'), '--url', mirror.url, '--json']);
        assert.equal(r.code, EXIT.preflight, `${r.stdout}\n${r.stderr}`);
        const events = r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        const err = events.find((e) => e.event === 'error');
        assert.ok(err, 'an error event for scripts');
        assert.match(err.message, /cannot be executed/);
        assert.match(err.hint, /noexec/);
        assert.equal(err.exitCode, EXIT.preflight);
        const files = execFileSync('find', [mnt, '-type', 'f']).toString().trim().split('\n').filter(Boolean);
        assert.ok(
          files.every((f) => f.endsWith('state.json')),
          `only the state file may exist: ${files.join(', ')}`,
        );
      } finally {
        execFileSync('umount', [mnt]);
        await fs.rm(mnt, { recursive: true, force: true });
      }
    });

    test('two bootstraps racing on one prefix: one wins, one is refused as busy, one waits; the prefix verifies', async () => {
      const prefix = await prefixes.add(NOBODY_UID, 'race');
      const first = spawnRelonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--json']);
      const lock = path.join(prefix, 'var/relonix/lock');
      for (let i = 0; i < 300; i++) {
        try {
          await fs.stat(lock);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const busy = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
      const waiter = spawnRelonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--wait', '300']);
      const [a, w] = await Promise.all([first.done, waiter.done]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(busy.code, EXIT.busy, `${busy.stdout}\n${busy.stderr}`);
      assert.match(busy.stderr, /another relonix \(pid \d+, bootstrap of/);
      assert.match(busy.stderr, /--wait/);
      assert.equal(w.code, 0, w.stderr);
      assert.match(w.stdout, /already bootstrapped|waiting for pid/);
      const verify = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
      assert.equal(verify.code, 0, verify.stderr);
    });
  },
  { concurrently: true },
);

describe('the demo (Nix 2.8)', () => {
  test('relonix demo bootstraps from its own loopback mirror, builds, and stops the mirror', async () => {
    const prefix = await prefixes.add(undefined, 'demo');
    const r = await relonix(undefined, ['demo', '--prefix', prefix]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /serving it at http:\/\/127\.0\.0\.1:\d+\//);
    assert.match(r.stderr, new RegExp(`it says: hello from a Nix store under ${prefix}/store`));
    assert.match(r.stdout, new RegExp(`works in ${prefix}\\. Next:`));
    // the mirror is gone once the demo exits
    const port = /127\.0\.0\.1:(\d+)/.exec(r.stderr)![1];
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`), /fetch failed/);
    // the way out it suggests is relonix uninstall, never rm -rf
    assert.match(r.stdout, new RegExp(`relonix uninstall --prefix ${prefix} +# remove the demo`));
    assert.doesNotMatch(r.stdout, /rm -rf/);
    const again = await relonix(undefined, ['demo', '--prefix', prefix]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already bootstrapped/);
    // --json: events only on stdout, nix-build's output path included
    const json = await relonix(undefined, ['demo', '--prefix', prefix, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const lines = json.stdout.split('\n').filter(Boolean);
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    const demo = lines.map((l) => JSON.parse(l)).find((e) => e.event === 'demo');
    assert.match(String(demo?.said), new RegExp(`hello from a Nix store under ${prefix}/store`));
  });
});
