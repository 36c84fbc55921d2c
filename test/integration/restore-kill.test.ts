// kill -9 during a restore from a cache, at many moments, over a slow HTTP origin: after every blow
// the store holds only complete paths under their real names (anything else is a .relonix- temporary
// the next run clears), a re-run completes without downloading everything again, and the result
// verifies with Nix's own hash check.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { parseNarInfo } from '../../src/cache/narinfo.ts';
import type { Fixture } from '../../src/demo/fixture.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { narDigest } from '../../src/store/nar/write.ts';
import { parseNarHashField } from '../../src/store/reginfo.ts';
import { removeTree } from '../../src/util/fs.ts';
import { type RelonixEvent, relonix, strikeRelonix } from '../helpers/cli.ts';
import { startServer, type TestServer } from '../helpers/http.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixFor, removePrefix } from '../helpers/paths.ts';
import { writeKey } from '../helpers/store.ts';

forEachNix(({ fixture, test }) => {
  let fx: Fixture;
  let top: string;
  let source: string;
  let cacheDir: string;
  let server: TestServer;
  let key: { secret: string; public: string };

  before(async () => {
    fx = await ensureFixture({ name: fixture });
    source = await prefixFor(undefined, 'restore-kill');
    top = path.dirname(source);
    cacheDir = path.join(top, 'cache');
    const b = await relonix(undefined, ['bootstrap', '--prefix', source, '--url', fx.tarball]);
    assert.equal(b.code, 0, b.stderr);
    key = await writeKey(path.join(top, 'k.secret'), 'restore-kill-1');
    // zstd, as publish makes by default: restore then runs many NARs through each decompressor, and a
    // blow lands in the middle of such a run; the throttled origin keeps the restore busy long enough
    const p = await relonix(undefined, [
      'publish',
      '--prefix',
      source,
      '--to',
      `file://${cacheDir}`,
      '--secret-key',
      path.join(top, 'k.secret'),
      '--compression',
      'zstd',
      '--quiet',
    ]);
    assert.equal(p.code, 0, p.stderr);
    server = await startServer({ dir: cacheDir, throttleBytes: 24 * 1024, throttleMs: 8 });
  });

  after(async () => {
    await server?.close();
    if (top) await removePrefix(top);
  });

  /** The signed NarHash of every path the cache holds, by basename. */
  async function cacheHashes(): Promise<Map<string, { hash: Buffer; size: number }>> {
    const out = new Map<string, { hash: Buffer; size: number }>();
    for (const f of (await fs.readdir(cacheDir)).filter((x) => x.endsWith('.narinfo'))) {
      const ni = parseNarInfo(await fs.readFile(path.join(cacheDir, f), 'utf8'));
      out.set(path.basename(ni.storePath), { hash: parseNarHashField(ni.narHash), size: ni.narSize });
    }
    return out;
  }

  function strike(prefix: string, cache: string, when: (ev: RelonixEvent) => number | undefined) {
    return strikeRelonix(['bootstrap', '--prefix', prefix, '--cache', cache, '--trusted-key', key.public, '--json'], when);
  }

  test('kill -9 at many moments of a restore over a slow origin: only complete paths ever carry their names, and a re-run completes', async () => {
    // a cache serves one store dir: the restore goes into the wiped source prefix
    const prefix = source;
    await removeTree(prefix);
    const want = await cacheHashes();
    let narBytes = 0;
    for (const f of await fs.readdir(path.join(cacheDir, 'nar'))) narBytes += (await fs.stat(path.join(cacheDir, 'nar', f))).size;
    const httpCache = `${server.url}/`;
    const atRestore = (ms: number) => (ev: RelonixEvent) => (ev.event === 'stage' && ev.stage === 'restore' && ev.status === 'start' ? ms : undefined);
    const strikes: [string, string, (ev: RelonixEvent) => number | undefined][] = [
      ['restore+50ms', httpCache, atRestore(50)],
      ['restore+400ms', httpCache, atRestore(400)],
      ['restore+900ms', httpCache, atRestore(900)],
      ['restore+1500ms', httpCache, atRestore(1500)],
      ['restore+2500ms', httpCache, atRestore(2500)],
      // everything is in and registered: the blow lands while Nix proves it works
      ['verify+30ms', httpCache, (ev) => (ev.event === 'stage' && ev.stage === 'verify' && ev.status === 'start' ? 30 : undefined)],
      // a file:// cache streams straight into the store: a blow mid-unpack leaves only a temporary
      ['file:// restore+150ms', `file://${cacheDir}`, atRestore(150)],
    ];
    const killed: string[] = [];
    for (const [label, cache, when] of strikes) {
      const r = await strike(prefix, cache, when);
      if (r.code === null) killed.push(label);
      else assert.equal(r.code, 0, `a run that was not killed must have succeeded (${label}): ${r.stderr}`);
      // nothing half-written: every name in the store is a complete, checked path or a temporary
      const store = path.join(prefix, 'store');
      for (const n of await fs.readdir(store).catch(() => [] as string[])) {
        // Nix's own (.links) and relonix's temporaries; what Nix itself builds once the restore is in,
        // the profile and the verify stage's check build, with the lock files of a build cut short
        if (n.startsWith('.') || /\.(drv|lock)$/.test(n) || /-(user-environment|env-manifest\.nix|relonix-check)$/.test(n)) continue;
        const w = want.get(n);
        assert.ok(w, `${n} in the store is not a path of the cache (after ${label})`);
        const d = await narDigest(path.join(store, n));
        assert.ok(d.hash.equals(w.hash) && d.size === w.size, `${n} is in the store under its real name but incomplete or altered (after ${label})`);
      }
    }
    console.log(`# killed: ${killed.join(', ')}`);
    assert.ok(killed.filter((k) => k.startsWith('restore+')).length >= 3, `at least three restores died mid-way (${killed.join(', ')})`);

    const served = server.bytesServed;
    const final = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--cache', httpCache, '--trusted-key', key.public]);
    assert.equal(final.code, 0, `${final.stdout}\n${final.stderr}`);
    // partial downloads resumed: nowhere near one full copy per killed run
    assert.ok(server.bytesServed < 2 * narBytes, `served ${server.bytesServed} bytes for ${narBytes} bytes of NAR files (${served} before the last run)`);

    const verify = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.doesNotMatch(verify.stderr, /modified|corrupt|invalid|missing/i);
    const valid = await relonix(undefined, [
      'run',
      '--prefix',
      prefix,
      '--',
      'nix-store',
      '--query',
      '--requisites',
      path.join(prefix, 'store', path.basename(fx.nixPath)),
    ]);
    assert.equal(valid.code, 0, valid.stderr);
    assert.equal(valid.stdout.trim().split('\n').length, want.size, 'the whole closure is registered');
    const store = await fs.readdir(path.join(prefix, 'store'));
    assert.deepEqual(
      store.filter((n) => n.startsWith('.relonix-')),
      [],
      'no temporary is left in the store',
    );
    await assert.rejects(fs.access(path.join(prefix, 'var/relonix/downloads/nar')), 'no partial download is left');
    const again = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--cache', httpCache, '--trusted-key', key.public]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to do/);

    // the restored prefix runs commands with a shell's exit codes
    const missing = await relonix(undefined, ['run', '--prefix', prefix, '--', 'no-such-command-here']);
    assert.equal(missing.code, 127, missing.stderr);
    assert.match(missing.stderr, /not found in the prefix's PATH/);
    const own = await relonix(undefined, ['run', '--prefix', prefix, '--', 'sh', '-c', 'exit 7']);
    assert.equal(own.code, 7);
  });

  test('a restore from an origin that fails requests and cuts NARs short still completes, resuming what it had', async () => {
    let narinfoFaults = 0;
    let cuts = 0;
    let narinfoRequests = 0;
    const flaky = await startServer({
      dir: cacheDir,
      handler: async (req, res) => {
        const p = new URL(req.url!, 'http://x').pathname;
        if (p.endsWith('.narinfo') && ++narinfoRequests % 4 === 0) {
          narinfoFaults++;
          res.writeHead(503, { 'retry-after': '0' }).end('injected');
          return true;
        }
        if (p.endsWith('.nar.zst') && !req.headers.range && cuts < 6) {
          const body = await fs.readFile(path.join(cacheDir, p));
          if (body.length < 64 * 1024) return false;
          cuts++;
          // the whole length promised, half of it sent, then the connection dies
          // the validator the server gives the rest of the file with, so If-Range matches
          const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
          res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes', etag });
          res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
          return true;
        }
        return false;
      },
    });
    try {
      await removeTree(source);
      const r = await relonix(undefined, ['bootstrap', '--prefix', source, '--cache', flaky.url, '--trusted-key', key.public]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.ok(narinfoFaults >= 3 && cuts >= 3, `faults were injected (${narinfoFaults} narinfo 503s, ${cuts} NARs cut)`);
      // a cut NAR resumed from where it stopped rather than starting over
      const resumed = flaky.log.filter((x) => x.path.endsWith('.nar.zst') && x.range && x.status === 206);
      assert.ok(resumed.length >= 3, `cut NARs resumed with Range (${resumed.length})`);
      const verify = await relonix(undefined, ['run', '--prefix', source, '--', 'nix-store', '--verify', '--check-contents']);
      assert.equal(verify.code, 0, verify.stderr);
    } finally {
      await flaky.close();
    }
  });
});
