// The pure rules behind what relonix refuses and what it never prints: URL credentials masked
// wherever a URL is shown, error pages worded without markup, option values parsed by one rule,
// netrc entries merged, key errors without key material, and the plan a cache gc makes.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { planGc } from '../../src/cache/gc-plan.ts';
import { generateKey, parsePublicKey, parseSecretKey } from '../../src/cache/keys.ts';
import { formatNarInfo, type NarInfo, narInfoKey } from '../../src/cache/narinfo.ts';
import type { CacheObject } from '../../src/cache/target.ts';
import { listedObjects } from '../../src/cache/target-s3.ts';
import { countOption, durationSeconds, secondsOption } from '../../src/commands/options.ts';
import { errorBodySummary } from '../../src/net/http.ts';
import { netrcCredentials, parseNetrc, saveNetrcCredentials } from '../../src/net/netrc.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { duration } from '../../src/util/format.ts';
import { redactText, redactUrl, splitCredentials } from '../../src/util/redact.ts';

test('redact: userinfo and credential parameters are masked, in a URL and in any text, nested URLs too', () => {
  assert.equal(redactUrl('http://alice:s3cret@cache.example/x'), 'http://***@cache.example/x');
  assert.equal(redactUrl('https://TOKEN123@host/'), 'https://***@host/');
  assert.equal(redactUrl('https://host/a?X-Amz-Signature=abc&region=eu&token=t0k'), 'https://host/a?X-Amz-Signature=***&region=eu&token=***');
  assert.equal(redactUrl('s3://b?endpoint=http://k:v@minio:9000&region=x'), 's3://b?endpoint=http://***@minio:9000&region=x');
  assert.equal(redactUrl('s3://b?endpoint=http%3A%2F%2Fk%3Av%40minio&region=x'), 's3://b?endpoint=http%3A%2F%2F***%40minio&region=x');
  assert.equal(redactUrl('file:///tmp/cache'), 'file:///tmp/cache');
  assert.equal(redactUrl('ssh://builder@10.0.0.7:2222'), 'ssh://builder@10.0.0.7:2222', 'an ssh user is a name, not a secret');
  assert.equal(redactUrl('ssh://builder:pw@10.0.0.7'), 'ssh://builder:***@10.0.0.7');
  assert.equal(redactUrl('/tmp/a@b'), '/tmp/a@b', 'not a URL: left as it is');
  assert.equal(redactText('GET http://u:pw@h/x failed; see "https://a:b@c/"'), 'GET http://***@h/x failed; see "https://***@c/"');
  const s = splitCredentials('http://us%20er:p%40ss@127.0.0.1:8080/cache');
  assert.equal(s.url, 'http://127.0.0.1:8080/cache');
  assert.deepEqual(s.credentials, { machine: '127.0.0.1', login: 'us er', password: 'p@ss' });
  assert.deepEqual(splitCredentials('http://h:1'), { url: 'http://h:1' });
  assert.equal(splitCredentials('https://u:p@h').url, 'https://h', 'a bare origin keeps its form');
  assert.deepEqual(splitCredentials('s3://b?x=1'), { url: 's3://b?x=1' });
});

test('HTTP error pages: an S3 error by its code and message, an HTML page by its title, never markup', () => {
  assert.equal(
    errorBodySummary('<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'),
    'AccessDenied: Access Denied',
  );
  const page = '<html>\r\n<head><title>405 Not Allowed</title></head>\n<body><center><h1>405 Not Allowed</h1></center><hr><center>nginx</center></body></html>';
  assert.equal(errorBodySummary(page, 'text/html'), '405 Not Allowed');
  assert.equal(errorBodySummary('<html><body>nothing useful</body></html>'), '');
  assert.equal(errorBodySummary('plain\ttext\x1b[31m with http://u:p@h/ in it\n'), 'plain text [31m with http://***@h/ in it');
  assert.ok(errorBodySummary('x'.repeat(500)).length <= 200);
});

test('options: --jobs 0, abc, -3, 2.5 and empty are refused by one rule; seconds and durations likewise', () => {
  const jobs = countOption('--jobs');
  assert.equal(jobs('4'), 4);
  for (const bad of ['0', 'abc', '-3', '2.5', '', ' ', '1e3', '99999999999999999999', '2000']) {
    assert.throws(
      () => jobs(bad),
      (e: unknown) => e instanceof RelonixError && e.kind === 'usage' && e.message.startsWith('--jobs takes a whole number'),
      bad,
    );
  }
  const secs = secondsOption('--grace');
  assert.equal(secs('0'), 0);
  assert.equal(secs('2.5'), 2.5);
  for (const bad of ['-1', 'x', '', '1h', 'Infinity']) assert.throws(() => secs(bad), RelonixError, bad);
  assert.equal(durationSeconds('90'), 90);
  assert.equal(durationSeconds('1h30m'), 5400);
  assert.equal(durationSeconds('2D'), 172_800);
  assert.equal(durationSeconds('1w'), 604_800);
  for (const bad of ['', 'h', '1y', '-1h', '1h 30m', 'abc']) assert.equal(durationSeconds(bad), undefined, bad);
  assert.equal(duration(5400), '1h30m');
  assert.equal(duration(3600), '1h');
  assert.equal(duration(0), '0s');
});

test('netrc: entries parsed as curl reads them, a default entry included', () => {
  const e = parseNetrc('machine a login u password p\n\ndefault login anon password x\nmachine b\n  login v password q macdef ignored\n');
  assert.deepEqual(e, [
    { machine: 'a', login: 'u', password: 'p' },
    { login: 'anon', password: 'x' },
    { machine: 'b', login: 'v', password: 'q' },
  ]);
});

test('netrc: credentials saved beside the entries already there, the default entry last, mode 0600, whitespace refused', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-netrc-'));
  const file = path.join(dir, 'etc', 'netrc');
  try {
    await fs.mkdir(path.dirname(file));
    await fs.writeFile(file, 'default login anon password x\nmachine a login old password stale\nmachine b login v password q\n', { mode: 0o644 });
    await saveNetrcCredentials(file, [{ machine: 'a', login: 'u', password: 'p@ss' }]);
    assert.equal(await fs.readFile(file, 'utf8'), 'machine b login v password q\nmachine a login u password p@ss\ndefault login anon password x\n');
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(netrcCredentials('a', file), { login: 'u', password: 'p@ss' });
    await assert.rejects(saveNetrcCredentials(file, [{ machine: 'c', login: 'u', password: 'two words' }]), /cannot carry/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('keys: a malformed key is refused without any of its text; a secret passed as a public key is named as such', () => {
  const k = generateKey('mine-1');
  const body = k.secret.slice(k.secret.indexOf(':') + 1);
  const noName = [body, `:${body}`, `${body}:mine-1`, `mine-1:${body.slice(0, 80)}`, `mine-1:${body}!`];
  for (const text of noName) {
    assert.throws(
      () => parseSecretKey(text, 'the secret key file k.secret'),
      (e: unknown) => {
        assert.ok(e instanceof RelonixError && e.kind === 'usage');
        assert.match(e.message, /^the secret key file k\.secret is not a Nix secret key: /);
        for (let i = 0; i + 12 <= body.length; i++) assert.ok(!`${e.message} ${e.hint}`.includes(body.slice(i, i + 12)), 'no key material');
        return true;
      },
    );
  }
  assert.throws(() => parsePublicKey(k.secret), /the public key mine-1 is not a Nix public key: it is a secret key/);
  assert.throws(
    () => parsePublicKey(body),
    (e: unknown) => e instanceof RelonixError && !e.message.includes(body.slice(0, 12)),
  );
  for (const name of ['../x', 'a/b', '', '.hidden', '-flag', 'a b', 'a:b', 'x'.repeat(129), 'tab\there']) {
    assert.throws(() => generateKey(name), /cannot be a key name/, name);
  }
  assert.equal(generateKey('cache.example.org-1').public.split(':')[0], 'cache.example.org-1');
});

/** A narinfo for `name` in store dir /s/t, referring to `refs`, with the NAR `nar/<name>.nar`. */
function info(name: string, refs: string[] = []): NarInfo {
  const p = (n: string) => `/s/t/${n.padEnd(32, '0').slice(0, 32)}-${n}`;
  return {
    storePath: p(name),
    url: `nar/${name}.nar`,
    compression: 'none',
    narHash: `sha256:${'0'.repeat(52)}`,
    narSize: 8,
    references: refs.map((r) => p(r).slice(5)),
    sigs: [],
  };
}

test('gc plan: keep-set refusals, the manifest Nix as a root, and nothing younger than the grace period removed', () => {
  const now = Date.UTC(2026, 0, 1, 12);
  const old = new Date(now - 2 * 3600_000);
  const infos = ['a', 'b', 'c', 'd'].map((n) => info(n, n === 'a' ? ['b'] : []));
  const objects: CacheObject[] = [
    ...infos.flatMap((ni) => [
      { key: narInfoKey(ni.storePath), size: formatNarInfo(ni).length, modified: old },
      { key: ni.url, size: 8, modified: old },
    ]),
    { key: 'nar/young.nar', size: 8, modified: new Date(now - 60_000) },
    { key: 'nar/evil', size: 0, notRegular: 'a symlink' },
  ];
  const base = {
    objects,
    infos: new Map(infos.map((ni) => [narInfoKey(ni.storePath), ni])),
    storeDir: '/s/t',
    keepFile: 'keep',
    dropNix: [] as string[],
    graceSeconds: 3600,
    now,
    url: 'file:///c',
  };
  for (const keep of [[], ['/s/t/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-nope'], ['/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x']]) {
    assert.throws(() => planGc({ ...base, keep }), /so gc would remove all 4 paths of the cache; nothing was removed/);
  }
  const manifest = { version: 1 as const, storeDir: '/s/t', nix: { 'x86_64-linux': { path: infos[2]!.storePath, publishedAt: '' } } };
  const p = planGc({ ...base, keep: [infos[0]!.storePath, '/s/t/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-nope'], manifest });
  assert.deepEqual(p.kept, [infos[0]!.storePath, infos[1]!.storePath, infos[2]!.storePath].sort());
  assert.deepEqual(p.removedNarInfos, [narInfoKey(infos[3]!.storePath)]);
  assert.deepEqual(p.removedNars, ['nar/d.nar'], 'the young NAR and the symlink stay');
  assert.equal(p.young, 1);
  assert.deepEqual(
    p.leftAlone.map((o) => o.key),
    ['nar/evil'],
  );
  assert.equal(p.missingRoots.length, 1);
  const dropped = planGc({ ...base, keep: [infos[0]!.storePath], manifest, dropNix: ['x86_64-linux'] });
  assert.ok(dropped.removedNarInfos.includes(narInfoKey(infos[2]!.storePath)));
  assert.deepEqual(dropped.droppedNix, ['x86_64-linux']);
  const young = planGc({ ...base, keep: [infos[0]!.storePath], now: now - 2 * 3600_000 + 1000 });
  assert.deepEqual(young.removedNarInfos, [], 'everything is younger than the grace period then');
});

test('S3 listing: keys, sizes and LastModified read from a ListObjectsV2 answer', () => {
  const xml =
    '<ListBucketResult><Contents><Key>pre/a.narinfo</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><Size>12</Size></Contents>' +
    '<Contents><Key>pre/nar/x&amp;y.nar</Key><Size>3</Size></Contents></ListBucketResult>';
  assert.deepEqual(listedObjects(xml, 'pre/'), [
    { key: 'a.narinfo', size: 12, modified: new Date('2026-01-01T00:00:00.000Z') },
    { key: 'nar/x&y.nar', size: 3, modified: undefined },
  ]);
});
