// The remote builders' files, computed from the recorded builders: the address grammar, the
// machines file, the ssh config that carries the port, nix.conf's builders block beside the
// managed one (user lines kept, removal leaves the file as it was), NIX_SSHOPTS, and the hints.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { envScripts, nixVariables } from '../../src/prefix/environment.ts';
import { layout } from '../../src/prefix/layout.ts';
import { dropNixConfBlock, mergeNixConf, nixConfBlock } from '../../src/prefix/nix-conf.ts';
import { planRemoteBootstrap } from '../../src/remote/bootstrap.ts';
import {
  BUILDERS_BLOCK,
  type Builder,
  buildersBlock,
  hostAlias,
  machinesText,
  parseBuildersFile,
  parseBuilderUrl,
  sshConfigText,
} from '../../src/remote/machines.ts';
import { keyscanLine } from '../../src/remote/ssh.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { shQuote } from '../../src/util/shell.ts';

// the store dir given: a prefix that happens to exist at /tmp/rx (its state names another store dir)
// would otherwise change every plan here
const l = layout('/tmp/rx', '/tmp/rx/store');

test('builder addresses: user, host and port are read; anything else is refused as usage', () => {
  assert.deepEqual(parseBuilderUrl('ssh://b@10.0.0.7:2222'), { url: 'ssh://b@10.0.0.7:2222', user: 'b', host: '10.0.0.7', port: 2222 });
  assert.deepEqual(parseBuilderUrl('ssh://host.example/'), { url: 'ssh://host.example', user: undefined, host: 'host.example', port: undefined });
  assert.deepEqual(parseBuilderUrl('ssh://b@[::1]:22'), { url: 'ssh://b@[::1]:22', user: 'b', host: '::1', port: 22 });
  for (const bad of ['10.0.0.7', 'http://b@h', 'ssh://b:pw@h', 'ssh://b@h/path', 'ssh://b@h?remote-program=x', 'ssh://']) {
    assert.throws(
      () => parseBuilderUrl(bad),
      (e: unknown) => e instanceof RelonixError && e.kind === 'usage' && /ssh:\/\/USER@HOST/.test(e.hint ?? ''),
      bad,
    );
  }
});

test('machines file and ssh config: one Host alias per builder with its port, user and key; the URI names the alias', () => {
  const a: Builder = { url: 'ssh://b@10.0.0.7:2222', user: 'b', host: '10.0.0.7', port: 2222, key: '/k/id', jobs: 3, system: 'x86_64-linux' };
  const c: Builder = { url: 'ssh://other', host: 'other', jobs: 1, system: 'aarch64-linux' };
  assert.equal(hostAlias(a), 'relonix-b-10.0.0.7-2222');
  assert.equal(hostAlias(c), 'relonix--other-22');
  const m = machinesText(l, [a, c])
    .split('\n')
    .filter((x) => x && !x.startsWith('#'));
  assert.deepEqual(m, [
    'ssh://relonix-b-10.0.0.7-2222?remote-program=/tmp/rx/bin/nix-store x86_64-linux - 3 1',
    'ssh://relonix--other-22?remote-program=/tmp/rx/bin/nix-store aarch64-linux - 1 1',
  ]);
  const cfg = sshConfigText(l, [a, c]);
  const hostA = cfg.slice(cfg.indexOf('Host relonix-b-'), cfg.indexOf('Host relonix--other'));
  assert.equal(
    hostA,
    'Host relonix-b-10.0.0.7-2222\n  HostName 10.0.0.7\n  Port 2222\n  User b\n  IdentityFile /k/id\n  IdentitiesOnly yes\n  UserKnownHostsFile /tmp/rx/etc/ssh/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n\n',
  );
  assert.doesNotMatch(cfg.slice(cfg.indexOf('Host relonix--other')), /Port|User |IdentityFile/);
  assert.deepEqual(parseBuildersFile(JSON.stringify({ builders: [a, c] }), 'f'), [a, c]);
  assert.throws(() => parseBuildersFile('{"builders":[{"url":1}]}', 'f'), /does not list builders/);
});

test('nix.conf: the builders block sits beside the managed block; removing it gives back the file as it was', () => {
  const user = 'keep-outputs = true\n';
  const conf = mergeNixConf(user, nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal' }));
  const withB = mergeNixConf(conf, buildersBlock(l), BUILDERS_BLOCK);
  assert.match(withB, /^builders = @\/tmp\/rx\/etc\/nix\/machines$/m);
  assert.match(withB, /^builders-use-substitutes = true$/m);
  assert.ok(withB.endsWith(conf), 'the managed block and the user lines follow, untouched');
  assert.equal(mergeNixConf(withB, buildersBlock(l), BUILDERS_BLOCK), withB, 'adding again is stable');
  assert.equal(
    mergeNixConf(withB, nixConfBlock({ caches: ['file:///c'], trustedKeys: [], journal: 'wal' })).split(BUILDERS_BLOCK.end).length,
    2,
    'a bootstrap keeps the builders block',
  );
  assert.equal(dropNixConfBlock(withB, BUILDERS_BLOCK), conf);
  assert.equal(dropNixConfBlock(conf, BUILDERS_BLOCK), conf);
  const inMiddle = `a = 1\n${buildersBlock(l)}b = 2\n`;
  assert.equal(dropNixConfBlock(inMiddle, BUILDERS_BLOCK), 'a = 1\nb = 2\n');
});

test('NIX_SSHOPTS names the ssh config only when there are builders, in relonix env and the profile scripts', () => {
  assert.equal(nixVariables(l, { nix: '/tmp/rx/store/n', base: {} }).NIX_SSHOPTS, undefined);
  assert.equal(nixVariables(l, { nix: '/tmp/rx/store/n', base: {}, sshConfig: l.sshConfig }).NIX_SSHOPTS, '-F /tmp/rx/etc/ssh/config');
  assert.match(envScripts(l, '/tmp/rx/store/n', undefined, l.sshConfig).sh, /^export NIX_SSHOPTS='-F \/tmp\/rx\/etc\/ssh\/config'$/m);
  assert.doesNotMatch(envScripts(l, '/tmp/rx/store/n').sh, /NIX_SSHOPTS/);
});

test('the ssh-keyscan line adds to the prefix known_hosts, with -p only for another port', () => {
  assert.equal(keyscanLine(l, { host: 'h', port: 2222 }), 'ssh-keyscan -p 2222 h >> /tmp/rx/etc/ssh/known_hosts');
  assert.equal(keyscanLine(l, { host: 'h' }), 'ssh-keyscan h >> /tmp/rx/etc/ssh/known_hosts');
  assert.equal(shQuote("a b'c"), "'a b'\\''c'");
});

test('--bootstrap plan: a local tarball travels with the bundle, pinned to the verified sha256; URLs, caches and keys pass as they are', () => {
  const inc = '/tmp/rx/var/relonix/incoming';
  const sha = 'a'.repeat(64);
  const local = planRemoteBootstrap(l, { url: '/srv/nix-2.8.0-x86_64-linux.tar.xz', caches: [], trustedKeys: [] }, sha, '/opt/relonix/dist/relonix.mjs', inc);
  assert.deepEqual(local.uploads, [
    { local: '/opt/relonix/dist/relonix.mjs', remote: `${inc}/relonix.mjs` },
    { local: '/srv/nix-2.8.0-x86_64-linux.tar.xz', remote: `${inc}/nix-2.8.0-x86_64-linux.tar.xz` },
  ]);
  assert.deepEqual(local.args, ['bootstrap', '--prefix', '/tmp/rx', '--url', `${inc}/nix-2.8.0-x86_64-linux.tar.xz`, '--sha256', sha]);
  const fileUrl = planRemoteBootstrap(l, { url: 'file:///srv/n.tar.xz', caches: [], trustedKeys: [] }, undefined, '/b.mjs', inc);
  assert.deepEqual(fileUrl.uploads[1], { local: '/srv/n.tar.xz', remote: `${inc}/n.tar.xz` });

  const given = 'b'.repeat(64);
  const remote = planRemoteBootstrap(
    layout('/tmp/rx', '/tmp/store'),
    { url: 'https://mirror.example/nix.tar.xz', sha256: given, caches: ['s3://c?region=x'], trustedKeys: ['c-1:AAAA'] },
    sha,
    '/b.mjs',
    inc,
  );
  assert.equal(remote.uploads.length, 1, 'only the bundle is copied');
  assert.deepEqual(remote.args, [
    'bootstrap',
    '--prefix',
    '/tmp/rx',
    '--store-dir',
    '/tmp/store',
    '--url',
    'https://mirror.example/nix.tar.xz',
    '--sha256',
    given,
    '--cache',
    's3://c?region=x',
    '--trusted-key',
    'c-1:AAAA',
  ]);

  const cacheOnly = planRemoteBootstrap(
    l,
    { caches: ['https://c.example', 'file:///persist/c'], trustedKeys: ['c-1:AAAA', 'c-2:BBBB'] },
    undefined,
    '/b.mjs',
    inc,
  );
  assert.deepEqual(cacheOnly.args, [
    'bootstrap',
    '--prefix',
    '/tmp/rx',
    '--cache',
    'https://c.example',
    '--cache',
    'file:///persist/c',
    '--trusted-key',
    'c-1:AAAA',
    '--trusted-key',
    'c-2:BBBB',
  ]);
});
