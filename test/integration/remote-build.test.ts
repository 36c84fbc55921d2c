// Remote builds between two relonix prefixes at the same path: the second host is an sshd whose
// sessions see another tree at the prefix's path (its own store, its own Nix), with test users that
// have passwd entries at both ends. builder add refuses what people meet (no passwd entry, no ssh,
// an unknown host key, no Nix there, another store dir, another system) with the fix, then
// nix-build --max-jobs 0 builds every derivation over there, and relonix build pushes what came back.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { serveDirectory } from '../../src/net/serve.ts';
import { bootstrappedPrefix, buildArgv, builtNames, freePort, graphName, graphNix, NAMES, readCacheDir } from '../helpers/build-rig.ts';
import { EXIT, NOBODY_UID, relonix } from '../helpers/cli.ts';
import { forEachNix, hookLineWithoutBuilders } from '../helpers/nixes.ts';
import { removePrefix, tempDir } from '../helpers/paths.ts';
import { asTestUser, inHost, type Passwd, passwdWith, relonixIn, runIn, type Sshd, sshKey, startSshd, type TestUser } from '../helpers/sshd.ts';
import { databaseJournal, walLines } from '../helpers/store.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

forEachNix(
  ({ fixture, test }) => {
    let top: string; // the local prefix's directory; on the remote, `remote` is mounted here
    let remote: string;
    let prefix: string;
    let secret: string;
    let pw: Passwd;
    let sshd: Sshd;
    let key: string;
    let url: string;
    let local: TestUser;
    let builder: TestUser;

    const remoteBinds = (): [string, string][] => [[remote, top]];
    const onLocal = (args: string[], env: string[] = []) => relonixIn(pw, [], local, args, env);
    const onRemote = (args: string[]) => relonixIn(pw, remoteBinds(), builder, args);

    /** Bootstraps a prefix at `p` on the remote from the fixture tarball. */
    async function bootstrapRemote(p: string, extra: string[] = []): Promise<void> {
      const fx = await ensureFixture({ name: fixture });
      const server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
      try {
        const r = await onRemote(['bootstrap', '--prefix', p, '--url', `${server.url}/${path.basename(fx.tarball)}`, ...extra]);
        assert.equal(r.code, EXIT.ok, `remote bootstrap: ${r.stderr.slice(-3000)}`);
      } finally {
        await server.close();
      }
    }

    /** A world-writable impure log at `rel` under the prefix's directory, on each side. */
    async function logs(rel: string): Promise<{ here: string; there: string; path: string }> {
      const here = path.join(top, rel);
      const there = path.join(remote, rel);
      for (const f of [here, there]) {
        await fs.writeFile(f, '');
        await fs.chmod(f, 0o666);
      }
      return { here, there, path: here };
    }

    const exists = (p: string) =>
      fs.access(p).then(
        () => true,
        () => false,
      );

    /** A local prefix directory `p` whose known_hosts has the builder's key (as the first test made it). */
    async function knowsHost(p: string): Promise<void> {
      const dir = path.join(p, 'etc', 'ssh');
      await fs.mkdir(dir, { recursive: true });
      await fs.copyFile(path.join(prefix, 'etc', 'ssh', 'known_hosts'), path.join(dir, 'known_hosts'));
      for (const f of [p, path.join(p, 'etc'), dir, path.join(dir, 'known_hosts')]) await fs.chown(f, local.uid, local.uid);
    }

    before(async () => {
      requireRoot('it runs sshd and mounts in private namespaces');
      for (const t of ['setpriv', 'ssh', 'ssh-keygen', 'ssh-keyscan']) requireTool(t, t === 'setpriv' ? 'util-linux' : 'openssh-client');
      requireTool('sshd', 'openssh-server');
      local = { name: 'relonix-here', uid: 4251, home: '' };
      ({ prefix, top, secret } = await bootstrappedPrefix(local.uid, 'remote', fixture));
      local.home = path.join(top, 'home-here');
      remote = tempDir('remote-tree');
      builder = { name: 'relonix-there', uid: 4252, home: path.join(top, 'home-there') };
      for (const [dir, u] of [
        [local.home, local],
        [path.join(remote, 'home-there'), builder],
      ] as const) {
        await fs.mkdir(dir);
        await fs.chown(dir, u.uid, u.uid);
      }
      await fs.chown(remote, builder.uid, builder.uid);
      const etc = tempDir('remote-etc');
      // sshd reads the authorized keys as the user it logs in
      await fs.chmod(etc, 0o755);
      pw = await passwdWith(etc, [local, builder]);
      key = await sshKey(path.join(top, 'id_builder'), local);
      await bootstrapRemote(prefix);
      sshd = await startSshd(path.join(etc, 'sshd'), { port: await freePort(), pw, binds: remoteBinds(), user: builder, authorized: key });
      url = `ssh://${builder.name}@127.0.0.1:${sshd.port}`;
    });

    after(async () => {
      await sshd?.stop();
      if (top) await removePrefix(top);
      if (pw) await removePrefix(path.dirname(pw.passwd));
      if (remote) await removePrefix(remote);
    });

    test('builder add: no passwd entry and no ssh are refused with the fix, before anything is written', async () => {
      const nobody = await relonix(NOBODY_UID, ['builder', 'add', '--prefix', prefix, '--key', key, url]);
      assert.equal(nobody.code, EXIT.preflight, nobody.stderr);
      assert.match(nobody.stderr, /no passwd entry.*No user exists for uid 4242/);
      assert.match(nobody.stderr, /fix: give the uid an entry/);
      const noSsh = await onLocal(['builder', 'add', '--prefix', prefix, '--key', key, url], [`PATH=${path.join(top, 'empty-bin')}`]);
      assert.equal(noSsh.code, EXIT.preflight, noSsh.stderr);
      assert.match(noSsh.stderr, /ssh is not on this host's PATH/);
      assert.match(noSsh.stderr, /fix: install the OpenSSH client/);
      const list = await onLocal(['builder', 'list', '--prefix', prefix]);
      assert.equal(list.stdout, '', 'no builder was recorded');
    });

    test('builder add: an unknown host key is refused with the ssh-keyscan line, which lets the next one in', async () => {
      const confFile = path.join(prefix, 'etc', 'nix', 'nix.conf');
      const before = await fs.readFile(confFile, 'utf8');
      assert.ok(before.split('\n').includes(hookLineWithoutBuilders(fixture, prefix)), 'no builders yet: no build hook of the Nix');
      assert.deepEqual(walLines(before), ['use-sqlite-wal = true'], 'the prefix is on a local filesystem: its database has the WAL journal');
      assert.equal(await databaseJournal(prefix), 'wal');
      const r = await onLocal(['builder', 'add', '--prefix', prefix, '--key', key, '--jobs', '2', url]);
      assert.equal(r.code, EXIT.preflight, r.stderr);
      assert.match(r.stderr, /host key of .* is not in .*known_hosts/);
      const line = /fix: add it \(after checking its fingerprint with the builder's owner\): (ssh-keyscan .*)$/m.exec(r.stderr)?.[1];
      assert.ok(line, r.stderr);
      assert.equal(line, `ssh-keyscan -p ${sshd.port} 127.0.0.1 >> ${prefix}/etc/ssh/known_hosts`);
      const scan = await runIn(inHost(pw, [], asTestUser(local, ['sh', '-c', line])));
      assert.equal(scan.code, 0, scan.stderr);
      const ok = await onLocal(['builder', 'add', '--prefix', prefix, '--key', key, '--jobs', '2', url]);
      assert.equal(ok.code, EXIT.ok, ok.stderr);
      const list = await onLocal(['builder', 'list', '--prefix', prefix]);
      assert.equal(list.stdout, `${url} x86_64-linux 2 ${key}\n`);
      const conf = await fs.readFile(path.join(prefix, 'etc', 'nix', 'nix.conf'), 'utf8');
      assert.match(conf, new RegExp(`^builders = @${prefix}/etc/nix/machines$`, 'm'));
      assert.match(conf, /^builders-use-substitutes = true$/m);
      assert.match(conf, /^sandbox = false$/m, 'the managed block is still there');
      assert.deepEqual(walLines(conf), walLines(before), "the database's journal is kept");
      // the hook this Nix has: 2.8's libexec program; 2.26's tarball has none, its nix runs it as a subcommand
      const nix = path.join(prefix, 'store', path.basename((await ensureFixture({ name: fixture })).nixPath));
      const hook = fixture === '2.8' ? `${nix}/libexec/nix/build-remote` : `${nix}/bin/nix __build-remote`;
      assert.ok(conf.split('\n').includes(`build-hook = ${hook}`), conf);
      const machines = await fs.readFile(path.join(prefix, 'etc', 'nix', 'machines'), 'utf8');
      assert.match(machines, new RegExp(`^ssh://relonix-\\S+\\?remote-program=${prefix}/bin/nix-store x86_64-linux - 2 1$`, 'm'));
      const ssh = await fs.readFile(path.join(prefix, 'etc', 'ssh', 'config'), 'utf8');
      assert.match(ssh, new RegExp(`^  Port ${sshd.port}$`, 'm'));
      assert.match(ssh, new RegExp(`^  IdentityFile ${key}$`, 'm'));
      const env = await onLocal(['env', '--prefix', prefix, '--shell', 'json']);
      assert.equal(JSON.parse(env.stdout).NIX_SSHOPTS, `-F ${prefix}/etc/ssh/config`);
      assert.match(await fs.readFile(path.join(prefix, 'etc', 'profile.d', 'relonix.sh'), 'utf8'), /^export NIX_SSHOPTS='-F .*\/etc\/ssh\/config'$/m);
    });

    test('builder add: no Nix at the prefix there, another store dir there, another system: refused with the fix', async () => {
      const none = path.join(top, 'none');
      await knowsHost(none);
      const r = await onLocal(['builder', 'add', '--prefix', none, '--key', key, url]);
      assert.equal(r.code, EXIT.preflight, r.stderr);
      assert.match(r.stderr, new RegExp(`has no relonix Nix at ${none}`));
      assert.match(r.stderr, new RegExp(`fix: on 127\\.0\\.0\\.1, as ${builder.name}, run: npx relonix bootstrap --prefix ${none}`));

      // the same prefix path there holds a Nix of another store dir
      const other = path.join(top, 'other');
      await bootstrapRemote(other, ['--store-dir', path.join(top, 'other-store')]);
      await knowsHost(other);
      const wrongStore = await onLocal(['builder', 'add', '--prefix', other, '--key', key, url]);
      assert.equal(wrongStore.code, EXIT.preflight, wrongStore.stderr);
      assert.match(wrongStore.stderr, new RegExp(`has the store ${top}/other-store, not ${other}/store`));

      const wrongSystem = await onLocal(['builder', 'add', '--prefix', prefix, '--key', key, '--system', 'aarch64-linux', url]);
      assert.equal(wrongSystem.code, EXIT.preflight, wrongSystem.stderr);
      assert.match(wrongSystem.stderr, /is x86_64-linux, not aarch64-linux/);
      assert.match(wrongSystem.stderr, /fix: pass --system x86_64-linux/);
      const list = await onLocal(['builder', 'list', '--prefix', prefix]);
      assert.equal(list.stdout.split('\n').filter(Boolean).length, 1, 'the refusals left the builder list as it was');
    });

    test('builder add: this same prefix, reached over ssh, is refused as its own builder (its state has our identity)', async () => {
      // an sshd whose sessions see this host's own tree: the prefix at the path is this one
      const self = await startSshd(path.join(path.dirname(pw.passwd), 'sshd-self'), { port: await freePort(), pw, binds: [], user: local, authorized: key });
      try {
        const scan = await runIn(inHost(pw, [], asTestUser(local, ['sh', '-c', `ssh-keyscan -p ${self.port} 127.0.0.1 >> ${prefix}/etc/ssh/known_hosts`])));
        assert.equal(scan.code, 0, scan.stderr);
        const selfUrl = `ssh://${local.name}@127.0.0.1:${self.port}`;
        const r = await onLocal(['builder', 'add', '--prefix', prefix, '--key', key, selfUrl]);
        assert.equal(r.code, EXIT.usage, r.stderr);
        assert.match(r.stderr, new RegExp(`reaches this same prefix ${prefix} \\(its state has this prefix's identity\\): a prefix cannot be its own builder`));
        assert.match(r.stderr, /fix: add a builder on another host/);
        const list = await onLocal(['builder', 'list', '--prefix', prefix]);
        assert.doesNotMatch(list.stdout, new RegExp(`:${self.port} `), 'it was not recorded');
      } finally {
        await self.stop();
      }
    });

    test('builder add --bootstrap: a builder with no Nix at the prefix gets one over ssh, from the tarball this prefix came from', async () => {
      // a local tarball: it has no meaning on the builder, so it travels there with the bundle
      const fx = await ensureFixture({ name: fixture });
      const fresh = path.join(top, 'fresh');
      const boot = await onLocal(['bootstrap', '--prefix', fresh, '--url', fx.tarball]);
      assert.equal(boot.code, EXIT.ok, boot.stderr.slice(-3000));
      await knowsHost(fresh);
      const there = path.join(remote, 'fresh');
      assert.equal(await exists(path.join(there, 'bin', 'nix-instantiate')), false, 'the builder has no Nix at the prefix yet');

      const r = await onLocal(['builder', 'add', '--prefix', fresh, '--key', key, '--bootstrap', url]);
      assert.equal(r.code, EXIT.ok, r.stderr.slice(-4000));
      assert.match(r.stderr, new RegExp(`bootstrapping ${fresh} on 127\\.0\\.0\\.1`));
      assert.match(r.stdout, /^added ssh:\/\/relonix-there@127\.0\.0\.1:\d+ \(x86_64-linux, 1 job\)$/m);
      const state = JSON.parse(await fs.readFile(path.join(there, 'var', 'relonix', 'state.json'), 'utf8'));
      assert.ok(state.stages.verify, 'the bootstrap over there verified its Nix');
      assert.equal(state.storeDir, path.join(fresh, 'store'));
      assert.equal(state.source.sha256, fx.sha256, 'pinned to the tarball this prefix verified');
      assert.equal(await exists(path.join(there, 'var', 'relonix', 'incoming')), false, 'the copied bundle and tarball are gone');
      assert.ok(await exists(path.join(there, 'bin', 'nix-instantiate')));
      assert.equal((await onLocal(['builder', 'list', '--prefix', fresh])).stdout, `${url} x86_64-linux 1 ${key}\n`);

      // the builder is there now: a second add checks it and bootstraps nothing
      const again = await onLocal(['builder', 'add', '--prefix', fresh, '--key', key, '--bootstrap', url]);
      assert.equal(again.code, EXIT.ok, again.stderr);
      assert.doesNotMatch(again.stderr, /bootstrapping/);
    });

    test('relonix run -- nix-build --max-jobs 0: every derivation builds on the builder, and the outputs land here', async () => {
      const log = await logs('run.log');
      const expr = path.join(top, 'run.nix');
      await fs.writeFile(expr, graphNix({ log: log.path, salt: 'run', sleep: 0 }));
      const r = await onLocal(['run', '--prefix', prefix, '--', 'nix-build', '--max-jobs', '0', '--no-out-link', expr]);
      assert.equal(r.code, 0, r.stderr.slice(-4000));
      assert.deepEqual(builtNames(log.there).sort(), [...NAMES].sort(), 'every derivation ran on the builder');
      assert.deepEqual(builtNames(log.here), [], 'none ran here');
      const out = r.stdout.trim();
      assert.match(out, new RegExp(`^${prefix}/store/[0-9a-z]{32}-g-top$`));
      const deps = (await fs.readFile(path.join(out, 'deps'), 'utf8')).trim().split(' ');
      assert.deepEqual(deps.map((d) => graphName(path.basename(d))).sort(), ['u1', 'u2', 'u3']);
      for (const d of deps) assert.ok(await exists(d), `${d} came back with the closure`);
    });

    test('relonix build with a builder: the outputs built over there are pushed to the cache', async () => {
      const log = await logs('build.log');
      const expr = path.join(top, 'build.nix');
      await fs.writeFile(expr, graphNix({ log: log.path, salt: 'build', sleep: 0 }));
      const cacheDir = path.join(top, 'cache');
      await fs.mkdir(cacheDir);
      await fs.chown(cacheDir, local.uid, local.uid);
      const r = await onLocal(buildArgv({ prefix, cache: `file://${cacheDir}`, secret }, [], ['--max-jobs', '0', '--no-out-link', expr]));
      assert.equal(r.code, EXIT.ok, r.stderr.slice(-4000));
      assert.deepEqual(builtNames(log.there).sort(), [...NAMES].sort(), 'every derivation ran on the builder');
      assert.deepEqual(builtNames(log.here), []);
      const c = await readCacheDir(cacheDir);
      assert.deepEqual(c.broken, []);
      assert.deepEqual(c.paths.map(graphName).filter(Boolean).sort(), [...NAMES].sort(), 'every output is in the cache');
      assert.ok(c.paths.includes(path.basename(r.stdout.trim())));
    });

    test("builder remove: the builder, its files and NIX_SSHOPTS go; the user's nix.conf lines stay", async () => {
      const confFile = path.join(prefix, 'etc', 'nix', 'nix.conf');
      await fs.appendFile(confFile, 'keep-outputs = true\n');
      const unknown = await onLocal(['builder', 'remove', '--prefix', prefix, 'ssh://nobody@127.0.0.1:1']);
      assert.equal(unknown.code, EXIT.usage, unknown.stderr);
      assert.match(unknown.stderr, new RegExp(`fix: its builders: ${url.replace(/[.]/g, '\\.')}`));
      const r = await onLocal(['builder', 'remove', '--prefix', prefix, url]);
      assert.equal(r.code, EXIT.ok, r.stderr);
      assert.equal((await onLocal(['builder', 'list', '--prefix', prefix])).stdout, '');
      const conf = await fs.readFile(confFile, 'utf8');
      assert.doesNotMatch(conf, /^builders/m);
      assert.ok(conf.split('\n').includes(hookLineWithoutBuilders(fixture, prefix)), 'no builders left: no build hook of the Nix');
      assert.match(conf, /^keep-outputs = true$/m);
      assert.match(conf, /^sandbox = false$/m);
      for (const f of ['etc/nix/machines', 'etc/ssh/config']) assert.equal(await exists(path.join(prefix, f)), false, `${f} is gone`);
      const env = await onLocal(['env', '--prefix', prefix, '--shell', 'json']);
      assert.equal(JSON.parse(env.stdout).NIX_SSHOPTS, undefined);
      assert.doesNotMatch(await fs.readFile(path.join(prefix, 'etc', 'profile.d', 'relonix.sh'), 'utf8'), /NIX_SSHOPTS/);
    });
  },
  { concurrently: true },
);
