// Downloads from servers that send neither ETag nor Last-Modified: with a known sha256 a cut
// download resumes with Range anyway and the final hash decides; without one it starts over; and
// when the resumed bytes turn out to be another file's, it starts over once from the first byte.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { download } from '../../src/net/download.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { type ServerOptions, withServer as serve, type TestServer } from '../helpers/http.ts';

const MiB = 1 << 20;
const SIZE = 5 * MiB + 777;
const data = randomBytes(SIZE);
const other = randomBytes(SIZE);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fast = { retries: 8, minRetryDelayMs: 5 };
let tmp: string;
let n = 0;
const fresh = () => path.join(tmp, `d${++n}`, 'nix.tar.xz');

/** A server that sends neither ETag nor Last-Modified, for `fn` alone. */
const withServer = <T>(opts: ServerOptions, fn: (s: TestServer) => Promise<T>): Promise<T> => serve({ validators: false, ...opts }, fn);

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-novalidators-'));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

test('no validators, sha256 known: bodies cut short resume with Range and no If-Range, serving at most a MiB more than the file', async () => {
  await withServer({ files: { '/nix.tar.xz': data }, cutAfter: MiB + 13, cutRequests: 3 }, async (s) => {
    const dest = fresh();
    const r = await download({ url: `${s.url}/nix.tar.xz`, dest, sha256: sha(data), ...fast });
    assert.equal(r.sha256, sha(data));
    assert.equal(r.resumed, true);
    assert.ok(s.bytesServed <= SIZE + MiB, `served ${s.bytesServed} bytes for a ${SIZE}-byte file`);
    const ranged = s.log.filter((x) => x.status === 206);
    assert.equal(ranged.length, 3, 'three resumed requests');
    assert.ok(
      ranged.every((x) => /^bytes=[1-9]\d*-$/.test(x.range ?? '') && x.ifRange === undefined),
      JSON.stringify(ranged),
    );
    assert.ok((await fs.readFile(dest)).equals(data));
    assert.deepEqual(await fs.readdir(path.dirname(dest)), ['nix.tar.xz']);
  });
});

test('no validators, no sha256: a body cut short starts over from byte 0, and the file is still whole', async () => {
  await withServer({ files: { '/nix.tar.xz': data }, cutAfter: 2 * MiB, cutRequests: 2 }, async (s) => {
    const dest = fresh();
    const r = await download({ url: `${s.url}/nix.tar.xz`, dest, ...fast });
    assert.equal(r.sha256, sha(data));
    assert.equal(r.resumed, false);
    assert.equal(s.log.length, 3);
    assert.ok(
      s.log.every((x) => x.range === undefined && x.status === 200),
      'nothing vouches for a part: no Range is asked',
    );
    assert.ok((await fs.readFile(dest)).equals(data));
  });
});

test('no validators, a partial file left by a killed run: the next run resumes it when the sha256 is known', async () => {
  await withServer({ files: { '/nix.tar.xz': data }, cutAfter: 3 * MiB, cutRequests: 1 }, async (s) => {
    const dest = fresh();
    const url = `${s.url}/nix.tar.xz`;
    await assert.rejects(download({ url, dest, sha256: sha(data), retries: 0 }), (e: unknown) => e instanceof RelonixError && e.kind === 'network');
    const kept = (await fs.stat(`${dest}.part`)).size;
    assert.ok(kept > 0 && kept <= 3 * MiB, `kept ${kept} bytes`);
    const r = await download({ url, dest, sha256: sha(data), ...fast });
    assert.equal(r.resumed, true);
    assert.equal(s.log[1]!.range, `bytes=${kept}-`);
    assert.equal(s.log[1]!.bytes, SIZE - kept);
  });
});

/** A server whose first answer (cut short) is `first`; from the second request on it serves `then`. */
function changing<T>(first: Buffer, then: Buffer, fn: (s: TestServer) => Promise<T>): Promise<T> {
  const files: Record<string, Buffer> = { '/nix.tar.xz': first };
  let requests = 0;
  const handler = () => {
    if (++requests === 2) files['/nix.tar.xz'] = then;
    return false;
  };
  return withServer({ files, cutAfter: 2 * MiB, cutRequests: 1, handler }, fn);
}

test('no validators, the file changes on the server mid-way: the spliced result fails its hash, and one fresh start fixes it', async () => {
  await changing(other, data, async (s) => {
    const dest = fresh();
    const r = await download({ url: `${s.url}/nix.tar.xz`, dest, sha256: sha(data), ...fast });
    assert.equal(r.sha256, sha(data));
    assert.equal(r.resumed, false, 'the file came whole from the fresh start');
    assert.deepEqual(
      s.log.map((x) => [x.status, x.range === undefined ? 'whole' : 'range']),
      [
        [200, 'whole'],
        [206, 'range'],
        [200, 'whole'],
      ],
    );
    assert.ok((await fs.readFile(dest)).equals(data));
  });
});

test('no validators, the file changes for good: after the fresh start the hash still fails, as an integrity error with nothing left behind', async () => {
  await changing(data, other, async (s) => {
    const dest = fresh();
    await assert.rejects(download({ url: `${s.url}/nix.tar.xz`, dest, sha256: sha(data), ...fast }), (e: unknown) => {
      assert.ok(e instanceof RelonixError, String(e));
      assert.equal(e.kind, 'integrity');
      assert.ok(e.message.includes(sha(data)) && e.message.includes(sha(other)), e.message);
      return true;
    });
    assert.equal(s.log.length, 3, 'the cut request, the resume, and one fresh start');
    assert.equal(s.log[2]!.range, undefined);
    assert.deepEqual(await fs.readdir(path.dirname(dest)), []);
  });
});
