// The whole loop as a user would run it: bootstrap from the fixture tarball as a uid with no passwd
// entry, publish the prefix's Nix to nginx, let Debian's Nix verify the cache, re-publish (nothing
// goes up), wipe the prefix and bootstrap from the cache alone, then run the restored Nix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ensureFixture } from '../src/demo/mirror.ts';
import { serveDirectory } from '../src/net/serve.ts';
import { relonix, prefixFor, removePrefix, NOBODY_UID, requireRoot } from './helpers/setpriv.ts';
import { startNginx } from './helpers/nginx.ts';
import { generateKey } from '../src/cache/keys.ts';

test('bootstrap as uid 4242, publish to nginx, nix store verify, re-publish uploads nothing, restore with bootstrap --cache', async () => {
  requireRoot('setpriv to uid 4242');
  const fx = await ensureFixture();
  const server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
  const url = `${server.url.replace(/\/$/, '')}/${path.basename(fx.tarball)}`;
  const prefix = await prefixFor(NOBODY_UID, 'roundtrip');
  const top = path.dirname(prefix);
  const ngx = await startNginx(path.join(top, 'nginx'));
  try {
    const b = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', url]);
    assert.equal(b.code, 0, b.stderr);
    const k = generateKey('rt-1');
    const secret = path.join(top, 'rt.secret');
    await fs.writeFile(secret, k.secret);
    await fs.chown(secret, NOBODY_UID, NOBODY_UID);
    const p1 = await relonix(NOBODY_UID, ['publish', '--prefix', prefix, '--to', ngx.url, '--secret-key', secret, '--quiet']);
    assert.equal(p1.code, 0, p1.stderr);
    const n = Number(/published (\d+) NARs/.exec(p1.stdout)?.[1]);
    assert.ok(n > 5, p1.stdout);
    const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
    const q = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '-qR', state.nix]);
    assert.equal(q.code, 0, q.stderr);
    const closure = q.stdout.trim().split('\n');
    const v = spawnSync('/usr/bin/nix', ['--extra-experimental-features', 'nix-command', 'store', 'verify', '--store', ngx.url, '--trusted-public-keys', k.public, ...closure], {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin', HOME: top, NIX_CONF_DIR: top, NIX_STORE_DIR: path.join(prefix, 'store'), NIX_STATE_DIR: path.join(top, 'nixstate'), NIX_LOG_DIR: path.join(top, 'nixlog') },
    });
    assert.equal(v.status, 0, v.stderr);
    const p2 = await relonix(NOBODY_UID, ['publish', '--prefix', prefix, '--to', ngx.url, '--secret-key', secret, '--quiet']);
    assert.equal(p2.code, 0, p2.stderr);
    assert.match(p2.stdout, /published 0 NARs/);
    await removePrefix(prefix);
    await fs.mkdir(prefix, { recursive: true });
    await fs.chown(prefix, NOBODY_UID, NOBODY_UID);
    const r = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--cache', ngx.url, '--trusted-key', k.public]);
    assert.equal(r.code, 0, r.stderr);
    const ver = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
    assert.equal(ver.code, 0, ver.stderr);
    const nv = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix', '--version']);
    assert.equal(nv.code, 0, nv.stderr);
    assert.match(nv.stdout, /nix/i);
  } finally {
    await ngx.stop();
    await server.close();
    await removePrefix(top);
  }
});
