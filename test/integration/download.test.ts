// Downloads against a real loopback server that fails the way mirrors do.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fetchTarball } from '../../src/bootstrap/stages/fetch.ts';
import { defaultReleaseUrl, download, resolveSha256 } from '../../src/net/download.ts';
import { serveDirectory } from '../../src/net/serve.ts';
import { normalizeSha256 } from '../../src/net/sha256.ts';
import { layout } from '../../src/prefix/layout.ts';
import { toNixBase32 } from '../../src/store/nixbase32.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { startServer, withServer } from '../helpers/http.ts';

const MiB = 1 << 20;
const SIZE = 6 * MiB + 12345;
const data = randomBytes(SIZE);
const sha = createHash('sha256').update(data).digest('hex');
const fast = { retries: 8, minRetryDelayMs: 5 };
let tmp: string;
let n = 0;
const fresh = () => path.join(tmp, `d${++n}`, 'nix.tar.xz');

async function leftovers(dest: string): Promise<string[]> {
  return (await fs.readdir(path.dirname(dest)).catch(() => [])).sort();
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-download-'));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

test('download: 503s then a body cut short resume with Range, serving little more than the file', async () => {
  await withServer({ files: { '/nix.tar.xz': data }, failFirst: 2, cutAfter: 1 * MiB + 7, cutRequests: 3 }, async (s) => {
    const dest = fresh();
    const seen: number[] = [];
    const r = await download({ url: `${s.url}/nix.tar.xz`, dest, sha256: sha, ...fast, onProgress: (p) => seen.push(p.received) });
    assert.equal(r.sha256, sha);
    assert.equal(r.bytes, SIZE);
    assert.equal(r.resumed, true);
    assert.ok(s.bytesServed < SIZE + MiB, `served ${s.bytesServed} bytes for a ${SIZE}-byte file`);
    assert.deepEqual(
      s.log.slice(0, 2).map((x) => x.status),
      [503, 503],
    );
    const ranged = s.log.filter((x) => x.status === 206);
    assert.equal(ranged.length, 3, 'three resumed requests');
    assert.ok(
      ranged.every((x) => x.ifRange),
      'resumes carry If-Range',
    );
    assert.match(ranged[0]!.range ?? '', /^bytes=[1-9]\d*-$/);
    assert.ok(seen.at(-1) === SIZE && seen.every((v, i) => i === 0 || v >= seen[i - 1]! || v === 0));
    assert.ok((await fs.readFile(dest)).equals(data));
    assert.deepEqual(await leftovers(dest), ['nix.tar.xz']);
  });
});

test('download: wrong sha256 rejects naming both checksums and the URL, leaving nothing behind', async () => {
  const wrong = createHash('sha256').update('something else').digest('hex');
  await withServer({ files: { '/nix.tar.xz': data } }, async (s) => {
    const dest = fresh();
    const url = `${s.url}/nix.tar.xz`;
    await assert.rejects(download({ url, dest, sha256: wrong, ...fast }), (e: unknown) => {
      assert.ok(e instanceof RelonixError);
      assert.equal(e.kind, 'integrity');
      assert.ok(e.message.includes(wrong) && e.message.includes(sha) && e.message.includes(url), e.message);
      return true;
    });
    assert.deepEqual(await leftovers(dest), []);
  });
});

test('download: a server that ignores Range makes the next attempt start from zero, still correct', async () => {
  await withServer({ files: { '/nix.tar.xz': data }, ignoreRange: true, cutAfter: 2 * MiB, cutRequests: 1 }, async (s) => {
    const dest = fresh();
    const r = await download({ url: `${s.url}/nix.tar.xz`, dest, sha256: sha, ...fast });
    assert.equal(r.sha256, sha);
    assert.equal(r.resumed, false);
    assert.equal(s.log.length, 2);
    assert.match(s.log[1]!.range ?? '', /^bytes=[1-9]\d*-$/, 'it did ask to resume');
    assert.equal(s.log[1]!.status, 200);
    assert.ok((await fs.readFile(dest)).equals(data));
    assert.deepEqual(await leftovers(dest), ['nix.tar.xz']);
  });
});

test('download: a partial file left by a killed run is resumed by the next run', async () => {
  await withServer({ files: { '/nix.tar.xz': data }, cutAfter: 3 * MiB, cutRequests: 1 }, async (s) => {
    const dest = fresh();
    const url = `${s.url}/nix.tar.xz`;
    // first run gives up at once (no retries), as if the container restarted mid-transfer
    await assert.rejects(download({ url, dest, sha256: sha, retries: 0 }), (e: unknown) => {
      assert.ok(e instanceof RelonixError);
      assert.equal(e.kind, 'network');
      assert.ok(e.hint && /resume/.test(e.hint));
      return true;
    });
    const kept = (await fs.stat(`${dest}.part`)).size;
    assert.ok(kept > 0 && kept <= 3 * MiB, `kept ${kept} bytes`);
    const r = await download({ url, dest, sha256: sha, ...fast });
    assert.equal(r.resumed, true);
    assert.equal(r.sha256, sha);
    assert.equal(s.log[1]!.range, `bytes=${kept}-`, 'the second run asked for exactly what was missing');
    assert.equal(s.log[1]!.bytes, SIZE - kept);
    assert.deepEqual(await leftovers(dest), ['nix.tar.xz']);
  });
});

test('download: a file that changed on the server since the partial download is fetched whole (If-Range)', async () => {
  const old = randomBytes(SIZE);
  const dest = fresh();
  await withServer({ files: { '/nix.tar.xz': old }, cutAfter: 2 * MiB }, async (s) => {
    await assert.rejects(download({ url: `${s.url}/nix.tar.xz`, dest, retries: 0 }));
  });
  // same URL path, new content, new ETag: the stale prefix must not be spliced on
  await withServer({ files: { '/nix.tar.xz': data } }, async (s) => {
    // the partial names the old server's URL; rewrite it as if the same mirror had been updated
    const meta = JSON.parse(await fs.readFile(`${dest}.part.json`, 'utf8'));
    meta.url = `${s.url}/nix.tar.xz`;
    await fs.writeFile(`${dest}.part.json`, JSON.stringify(meta));
    const r = await download({ url: `${s.url}/nix.tar.xz`, dest, sha256: sha, ...fast });
    assert.equal(r.sha256, sha);
    assert.match(s.log[0]!.range ?? '', /^bytes=[1-9]\d*-$/);
    assert.equal(s.log[0]!.status, 200, 'If-Range did not match, so the whole file came back');
  });
});

test('download: URL.sha256 is read as the releases publish it (hex or nix-base32)', async () => {
  const b32 = toNixBase32(Buffer.from(sha, 'hex'));
  const files = {
    '/a/nix.tar.xz.sha256': `${sha}\n`,
    '/b/nix.tar.xz.sha256': `${b32}  nix.tar.xz\n`,
    '/c/nix.tar.xz.sha256': `<html>oops</html>\n`,
  };
  await withServer({ files, failFirst: 1 }, async (s) => {
    assert.equal(await resolveSha256(`${s.url}/a/nix.tar.xz`, fast), sha, 'after one 503');
    assert.equal(await resolveSha256(`${s.url}/b/nix.tar.xz`, fast), sha);
    await assert.rejects(resolveSha256(`${s.url}/c/nix.tar.xz`, fast), /does not start with a sha256/);
    await assert.rejects(resolveSha256(`${s.url}/missing/nix.tar.xz`, fast), (e: unknown) => {
      assert.ok(e instanceof RelonixError && e.kind === 'failure' && /HTTP 404 Not Found: no such object on the server/.test(e.message));
      assert.match(e.hint ?? '', /--sha256/);
      return true;
    });
  });
  assert.equal(normalizeSha256(`sha256-${Buffer.from(sha, 'hex').toString('base64')}`), sha);
  assert.equal(normalizeSha256(`sha256:${b32}`), sha);
  assert.throws(
    () => normalizeSha256('abc'),
    (e: unknown) => e instanceof RelonixError && e.kind === 'usage',
  );
  assert.equal(defaultReleaseUrl('aarch64-linux', '2.24.10'), 'https://releases.nixos.org/nix/nix-2.24.10/nix-2.24.10-aarch64-linux.tar.xz');
});

test('download: network failure after retries is a network error with a hint; 404 is a missing object, not retried', async () => {
  const gone = await startServer({});
  const port = gone.port;
  await gone.close();
  const dest = fresh();
  await assert.rejects(download({ url: `http://127.0.0.1:${port}/nix.tar.xz`, dest, retries: 2, minRetryDelayMs: 5 }), (e: unknown) => {
    assert.ok(e instanceof RelonixError);
    assert.equal(e.kind, 'network');
    assert.match(e.message, /after 3 attempts/);
    assert.match(e.message, /ECONNREFUSED/);
    assert.ok(e.hint);
    return true;
  });
  await withServer({ files: {}, failFirst: 0 }, async (s) => {
    await assert.rejects(download({ url: `${s.url}/nope.tar.xz`, dest: fresh(), ...fast }), (e: unknown) => {
      assert.ok(e instanceof RelonixError && e.kind === 'failure' && /HTTP 404 Not Found: no such object on the server/.test(e.message));
      return true;
    });
    assert.equal(s.requests, 1);
  });
  await withServer({ files: { '/x': data }, failFirst: 100, failStatus: 429 }, async (s) => {
    await assert.rejects(download({ url: `${s.url}/x`, dest: fresh(), retries: 3, minRetryDelayMs: 1 }), /HTTP 429/);
    assert.equal(s.requests, 4, 'one attempt plus three retries');
  });
});

test('fetch: fetchTarball reads URL.sha256, downloads into the prefix once, then needs no network', async () => {
  const mirror = path.join(tmp, 'mirror');
  await fs.mkdir(mirror, { recursive: true });
  await fs.writeFile(path.join(mirror, 'nix-2.8.0-x86_64-linux.tar.xz'), data);
  await fs.writeFile(path.join(mirror, 'nix-2.8.0-x86_64-linux.tar.xz.sha256'), `${sha}\n`);
  const l = layout(path.join(tmp, 'prefix'));
  const srv = await serveDirectory(mirror);
  const url = `${srv.url}/nix-2.8.0-x86_64-linux.tar.xz`;
  let first;
  try {
    first = await fetchTarball({ layout: l, url, ...fast });
  } finally {
    await srv.close();
  }
  assert.equal(first.sha256, sha);
  assert.equal(first.tarball, path.join(l.downloadsDir, 'nix-2.8.0-x86_64-linux.tar.xz'));
  // the mirror is gone: a re-run must still succeed from the finished download
  const again = await fetchTarball({ layout: l, url, retries: 0 });
  assert.deepEqual(again, first);
  // a corrupted finished file is not trusted
  await fs.appendFile(first.tarball, 'x');
  await assert.rejects(fetchTarball({ layout: l, url, retries: 0 }), (e: unknown) => e instanceof RelonixError && e.kind === 'network');
});

test('serve: serveDirectory answers GET, HEAD and ranges, and refuses paths outside its root', async () => {
  const dir = path.join(tmp, 'served');
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'f.bin'), data.subarray(0, 1000));
  await fs.writeFile(path.join(tmp, 'secret'), 'no');
  const srv = await serveDirectory(dir, { host: '127.0.0.1', port: 0 });
  try {
    const head = await fetch(`${srv.url}/f.bin`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '1000');
    assert.ok(head.headers.get('etag'));
    const part = await fetch(`${srv.url}/f.bin`, { headers: { range: 'bytes=990-' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 990-999/1000');
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(990, 1000)));
    const stale = await fetch(`${srv.url}/f.bin`, { headers: { range: 'bytes=990-', 'if-range': '"other"' } });
    assert.equal(stale.status, 200);
    assert.equal((await stale.arrayBuffer()).byteLength, 1000);
    assert.equal((await fetch(`${srv.url}/f.bin`, { headers: { range: 'bytes=5000-' } })).status, 416);
    assert.equal((await fetch(`${srv.url}/missing`)).status, 404);
    // send the raw path (fetch() would normalise it); either refusal keeps the file out of reach
    const status = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: srv.port, path: '/../secret' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });
    assert.ok(status === 403 || status === 404, `status ${status}`);
  } finally {
    await srv.close();
  }
});
