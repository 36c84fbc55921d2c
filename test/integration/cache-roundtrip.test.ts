// The whole loop as a user would run it: bootstrap from the fixture tarball as a uid with no passwd
// entry, publish the prefix's Nix to nginx, let Debian's Nix verify the cache, re-publish (nothing
// goes up), wipe the prefix and bootstrap from the cache alone, then run the restored Nix.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { NOBODY_UID, relonix } from '../helpers/cli.ts';
import { serveFixture } from '../helpers/mirror.ts';
import { withNginx } from '../helpers/nginx.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixFor, removePrefix } from '../helpers/paths.ts';
import { writeKey } from '../helpers/store.ts';
import { requireRoot } from '../helpers/tools.ts';

forEachNix(
  ({ fixture, test }) => {
    test('bootstrap as uid 4242, publish to nginx, nix store verify, re-publish uploads nothing, restore with bootstrap --cache', async () => {
      requireRoot('setpriv to uid 4242');
      const mirror = await serveFixture(fixture);
      const prefix = await prefixFor(NOBODY_UID, 'roundtrip');
      const top = path.dirname(prefix);
      try {
        await withNginx(top, async (ngx) => {
          const b = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
          assert.equal(b.code, 0, b.stderr);
          const secret = path.join(top, 'rt.secret');
          const k = await writeKey(secret, 'rt-1', NOBODY_UID);
          const p1 = await relonix(NOBODY_UID, ['publish', '--prefix', prefix, '--to', ngx.url, '--secret-key', secret, '--quiet']);
          assert.equal(p1.code, 0, p1.stderr);
          const n = Number(/published (\d+) NARs/.exec(p1.stdout)?.[1]);
          assert.ok(n > 5, p1.stdout);
          const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
          const q = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '-qR', state.nix]);
          assert.equal(q.code, 0, q.stderr);
          const closure = q.stdout.trim().split('\n');
          const v = spawnSync(
            '/usr/bin/nix',
            ['--extra-experimental-features', 'nix-command', 'store', 'verify', '--store', ngx.url, '--trusted-public-keys', k.public, ...closure],
            {
              encoding: 'utf8',
              env: {
                PATH: '/usr/bin:/bin',
                HOME: top,
                NIX_CONF_DIR: top,
                NIX_STORE_DIR: path.join(prefix, 'store'),
                NIX_STATE_DIR: path.join(top, 'nixstate'),
                NIX_LOG_DIR: path.join(top, 'nixlog'),
              },
            },
          );
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
          assert.ok(nv.stdout.includes(`nix (Nix) ${mirror.fx.version}\n`), nv.stdout);
        });
      } finally {
        await mirror.close();
        await removePrefix(top);
      }
    });
  },
  { concurrently: true },
);
