// Publishing over HTTP: nginx as the origin (publish, verify by Nix, restore), a flaky origin that
// answers 500s and resets connections, publish killed with SIGKILL mid-way, with the invariant
// "every narinfo points at a complete NAR" checked while it runs, and a NAR much bigger than the
// memory publish uses.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { generateKey, parseSecretKey } from '../../src/cache/keys.ts';
import { parseNarInfo } from '../../src/cache/narinfo.ts';
import { queryClosure } from '../../src/cache/nixstore.ts';
import { publishPaths } from '../../src/cache/publish.ts';
import { restoreFromCache } from '../../src/cache/restore.ts';
import { openTarget } from '../../src/cache/targets.ts';
import { fromNixBase32 } from '../../src/store/nixbase32.ts';
import { relonixWithHostNix, spawnRelonixWithHostNix } from '../helpers/cli.ts';
import { listenLoopback, startRelay } from '../helpers/http.ts';
import { withNginx } from '../helpers/nginx.ts';
import { removePrefix, REPO as root, tempDir } from '../helpers/paths.ts';
import { assertConsistent, buildClosure, isValid, makeStore, verifyCache, writeKey } from '../helpers/store.ts';
import { requireTool } from '../helpers/tools.ts';

requireTool('nix-store');
requireTool('nginx');

test('publish to nginx (WebDAV PUT), verify with Nix over HTTP, re-publish uploads nothing, restore from nginx', async () => {
  const dir = tempDir('ngx');
  try {
    await withNginx(dir, async (ngx) => {
      const s = makeStore(path.join(dir, 'p'));
      const { top, all } = buildClosure(s, 'web', { nix: true });
      const k = await writeKey(`${dir}/k.secret`, 'web-1');
      const env = { ...process.env, ...s.env, PATH: process.env.PATH };
      // through a relay that notes who ends each connection: done means exited, so publish lets go of
      // every connection itself, and none is left idle for nginx (which keeps them 75 s) to end
      const relay = await startRelay(ngx.port);
      let r;
      try {
        r = await spawnRelonixWithHostNix(
          [
            'publish',
            '--prefix',
            s.prefix,
            '--to',
            relay.url,
            '--secret-key',
            `${dir}/k.secret`,
            '--nix-store',
            '/usr/bin/nix-store',
            '--as-nix',
            top,
            '--header',
            'X-Test: 1',
          ],
          env,
        ).done;
      } finally {
        await relay.close();
      }
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /published 2 NARs/);
      assert.ok(relay.connections.length > 0, 'publish went through the relay');
      assert.deepEqual(
        relay.connections.filter((c) => c.closedBy !== 'client'),
        [],
        'every connection was ended by publish, none by nginx',
      );
      assert.equal(await assertConsistent(ngx.root), 2);
      const v = verifyCache(s, ngx.url, k.public);
      // nginx has no listing, so --all finds nothing over HTTP: verify the paths by name instead
      const v2 = verifyCache(s, ngx.url, k.public, all);
      assert.equal(v2.status, 0, v.stderr + v2.stderr);
      const again = relonixWithHostNix(
        ['publish', '--prefix', s.prefix, '--to', ngx.url, '--secret-key', `${dir}/k.secret`, '--nix-store', '/usr/bin/nix-store', '--as-nix', top],
        env,
      );
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /published 0 NARs .* skipped 2/);
      await removePrefix(s.prefix);
      const res = await restoreFromCache({
        layout: makeStore(s.prefix).layout,
        caches: [ngx.url],
        trustedKeys: [k.public],
        system: Object.keys(JSON.parse(readFileSync(path.join(ngx.root, 'relonix.json'), 'utf8')).nix)[0]!,
        nixStore: '/usr/bin/nix-store',
      });
      assert.deepEqual(res.paths.sort(), all);
      const f = makeStore(s.prefix);
      for (const p of all) assert.ok(isValid(f, p));
      assert.equal(f.run('/usr/bin/nix-store', ['--verify', '--check-contents']).status, 0);
    });
  } finally {
    await removePrefix(dir);
  }
});

test('a flaky origin (500s, reset connections) still ends with a complete cache', async () => {
  const dir = tempDir('flaky');
  const store = path.join(dir, 'cache');
  let n = 0;
  let faults = 0;
  const server = http.createServer((req, res) => {
    n++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (n % 3 === 0) {
        faults++;
        res.writeHead(500).end('injected');
        return;
      }
      if (n % 7 === 0) {
        faults++;
        req.socket.destroy();
        return;
      }
      const p = path.join(store, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
      if (req.method === 'PUT') {
        await fs.mkdir(path.dirname(p), { recursive: true });
        await fs.writeFile(`${p}.tmp`, Buffer.concat(chunks));
        await fs.rename(`${p}.tmp`, p);
        res.writeHead(201).end();
      } else {
        try {
          const b = await fs.readFile(p);
          res.writeHead(200, { 'content-length': b.length });
          res.end(req.method === 'HEAD' ? undefined : b);
        } catch {
          res.writeHead(404).end();
        }
      }
    });
  });
  const { url, close } = await listenLoopback(server);
  try {
    const s = makeStore(path.join(dir, 'p'));
    const a = buildClosure(s, 'f1');
    const b = buildClosure(s, 'f2');
    const paths = await queryClosure({ layout: s.layout, nixStore: '/usr/bin/nix-store', env: s.env }, [a.top, b.top]);
    const k = generateKey('fl-1');
    const r = await publishPaths({
      target: openTarget(url),
      storeDir: s.layout.storeDir,
      paths,
      key: parseSecretKey(k.secret),
      minRetryDelayMs: 5,
      retries: 10,
    });
    assert.equal(r.uploaded, 4);
    assert.ok(faults > 0, 'faults were injected');
    assert.equal(await assertConsistent(store), 4);
  } finally {
    await close();
    await removePrefix(dir);
  }
});

test('publish killed with SIGKILL mid-way: every narinfo always has its complete NAR, and a re-run completes', async () => {
  const dir = tempDir('kill');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const tops = [1, 2, 3, 4, 5, 6].map((i) => buildClosure(s, `k${i}`).top);
  await writeKey(`${dir}/k.secret`, 'kill-1');
  // NARs are staged under TMPDIR: what the killed run staged goes with the test's directory
  await fs.mkdir(path.join(dir, 'tmp'));
  const env = { ...process.env, ...s.env, PATH: process.env.PATH, TMPDIR: path.join(dir, 'tmp') };
  const args = [
    'publish',
    '--prefix',
    s.prefix,
    '--to',
    `file://${cache}`,
    '--secret-key',
    `${dir}/k.secret`,
    '--nix-store',
    '/usr/bin/nix-store',
    '--jobs',
    '2',
    ...tops,
  ];
  const { child } = spawnRelonixWithHostNix(args, env);
  let killed = false;
  child.stderr!.on('data', (d: Buffer) => {
    if (!killed && /published/.test(d.toString())) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  const violations: unknown[] = [];
  let checks = 0;
  const watch = setInterval(
    () =>
      void assertConsistent(cache).then(
        () => checks++,
        (e: unknown) => violations.push(e),
      ),
    5,
  );
  // check the invariant while the process runs and after it is gone
  const exit = await new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  clearInterval(watch);
  assert.deepEqual(violations, [], 'a narinfo pointed at a missing or partial NAR while publish ran');
  assert.ok(checks > 0);
  assert.ok(killed || exit === 0);
  const before = await assertConsistent(cache);
  assert.ok(before < 12, 'the kill left work undone');
  const r = relonixWithHostNix(args, env);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(await assertConsistent(cache), 12);
  assert.match(r.stdout, new RegExp(`published ${12 - before} NARs`));
  await removePrefix(dir);
});

test('a 128 MiB NAR publishes (zstd to file://, uncompressed over HTTP) with RSS growing far less than the NAR', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('bignar');
  const storeDir = path.join(dir, 'store');
  const big = path.join(storeDir, `${'b'.repeat(32)}-big`);
  await fs.mkdir(big, { recursive: true });
  const SIZE = 128 << 20;
  // sparse: cheap to make and to read, and as big as any other file to publish
  await fs.writeFile(path.join(big, 'blob'), '');
  await fs.truncate(path.join(big, 'blob'), SIZE);
  await writeKey(path.join(dir, 'k.secret'), 'big-1');
  const staging = path.join(dir, 'tmp');
  await fs.mkdir(staging);
  // what a publish killed with SIGKILL left (its pid is gone and it is old) goes; a fresh one stays
  const abandoned = path.join(staging, 'relonix-publish-4194305-abc');
  const fresh = path.join(staging, 'relonix-publish-4194306-def');
  await fs.mkdir(abandoned);
  await fs.writeFile(path.join(abandoned, 'x.nar.zst'), 'partial');
  await fs.utimes(abandoned, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
  await fs.mkdir(fresh);
  // the HTTP origin hashes each body as it arrives and keeps only the small objects
  const got = new Map<string, { bytes: number; sha256: string; contentLength?: string; body?: string }>();
  const server = http.createServer((req, res) => {
    const h = createHash('sha256');
    let bytes = 0;
    const small: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
      if (bytes < 1 << 16) small.push(c);
    });
    req.on('end', () => {
      const key = decodeURIComponent(new URL(req.url!, 'http://x').pathname.slice(1));
      if (req.method === 'PUT') {
        got.set(key, {
          bytes,
          sha256: h.digest('hex'),
          contentLength: req.headers['content-length'],
          body: bytes < 1 << 16 ? Buffer.concat(small).toString() : undefined,
        });
        res.writeHead(201).end();
      } else {
        const o = got.get(key);
        if (!o) return res.writeHead(404).end();
        res.writeHead(200, { 'content-length': o.bytes });
        res.end(req.method === 'HEAD' ? undefined : o.body);
      }
    });
  });
  const { url, close } = await listenLoopback(server);
  const script = path.join(dir, 'publish-big.mts');
  await fs.writeFile(
    script,
    `
import { readFileSync } from 'node:fs';
import { narDigest, formatNarHash } from ${JSON.stringify(path.join(root, 'src/store/nar/write.ts'))};
import { publishPaths } from ${JSON.stringify(path.join(root, 'src/cache/publish.ts'))};
import { openTarget } from ${JSON.stringify(path.join(root, 'src/cache/targets.ts'))};
import { parseSecretKey } from ${JSON.stringify(path.join(root, 'src/cache/keys.ts'))};
const [storeDir, big, secret, fileUrl, httpUrl, tmpDir] = process.argv.slice(2);
const d = await narDigest(big);
const paths = [{ path: big, narHash: formatNarHash(d.hash), narSize: d.size, references: [], deriver: '' }];
const key = parseSecretKey(readFileSync(secret, 'utf8'));
const before = process.memoryUsage().rss;
const a = await publishPaths({ target: openTarget(fileUrl), storeDir, paths, key, compression: 'zstd', tmpDir });
const b = await publishPaths({ target: openTarget(httpUrl), storeDir, paths, key, compression: 'none', tmpDir });
process.stdout.write(JSON.stringify({ before, maxRss: process.resourceUsage().maxRSS * 1024, narSize: d.size, a, b }));
`,
  );
  try {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', script, storeDir, big, path.join(dir, 'k.secret'), `file://${path.join(dir, 'cache')}`, url, staging],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, err);
    const m = JSON.parse(out) as {
      before: number;
      maxRss: number;
      narSize: number;
      a: { uploaded: number; compression: string };
      b: { uploaded: number; compression: string };
    };
    assert.ok(m.narSize > SIZE);
    assert.equal(m.a.uploaded, 1);
    assert.equal(m.a.compression, 'zstd');
    assert.equal(m.b.uploaded, 1);
    // holding the NAR (let alone the NAR and its compressed copy) would add at least 128 MiB; the
    // streams and the garbage collector's lag add a few tens under load
    const grew = m.maxRss - m.before;
    t.diagnostic(
      `peak RSS ${(m.maxRss / 2 ** 20).toFixed(1)} MiB, ${(grew / 2 ** 20).toFixed(1)} MiB above the start, for a ${(m.narSize / 2 ** 20).toFixed(0)} MiB NAR`,
    );
    assert.ok(grew < 64 << 20, `RSS grew by ${(grew / 2 ** 20).toFixed(1)} MiB publishing a ${(m.narSize / 2 ** 20).toFixed(0)} MiB NAR`);
    // file://: the narinfo names a complete zstd NAR
    const cache = path.join(dir, 'cache');
    assert.equal(await assertConsistent(cache), 1);
    // HTTP: the NAR went up whole with its length declared, and its hash is the narinfo's FileHash
    const ni = parseNarInfo(got.get(`${'b'.repeat(32)}.narinfo`)!.body!);
    assert.equal(ni.compression, 'none');
    const nar = got.get(ni.url)!;
    assert.equal(nar.bytes, m.narSize);
    assert.equal(nar.contentLength, String(m.narSize));
    assert.equal(nar.sha256, fromNixBase32(ni.fileHash!.slice(7), 32).toString('hex'));
    // nothing staged is left, and the abandoned staging directory was cleared
    assert.deepEqual((await fs.readdir(staging)).sort(), [path.basename(fresh)]);
  } finally {
    await close();
    await removePrefix(dir);
  }
});
