// S3: SigV4 as relonix computes it, checked against botocore's signer (Debian's python3-botocore),
// then a round trip through a loopback S3 endpoint that verifies every request's signature by
// recomputing it independently.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { gcCache } from '../../src/cache/gc.ts';
import { generateKey, parseSecretKey } from '../../src/cache/keys.ts';
import { queryClosure } from '../../src/cache/nixstore.ts';
import { publishPaths } from '../../src/cache/publish.ts';
import { restoreFromCache } from '../../src/cache/restore.ts';
import { openTarget } from '../../src/cache/targets.ts';
import { listenLoopback } from '../helpers/http.ts';
import { removePrefix, tempDir } from '../helpers/paths.ts';
import { AKID, SECRET, signedAuth } from '../helpers/sigv4.ts';
import { buildClosure, isValid, makeStore } from '../helpers/store.ts';

const PY = '/usr/bin/python3';
if (!existsSync(PY) || spawnSync(PY, ['-c', 'import botocore']).status !== 0) {
  throw new Error('Debian python3-botocore is needed for the SigV4 cross-check (apt-get install python3-botocore)');
}

// relonix leaves content-type out of the signed headers (a client's choice SigV4 allows), so the
// requests compared carry only headers both sign.
for (const [method, url, body] of [
  ['PUT', 'http://127.0.0.1:9000/my-bucket/nar/abc%2Bdef.nar.xz', 'StorePath: /tmp/nix/store/x\n'],
  ['GET', 'http://127.0.0.1:9000/my-bucket?list-type=2&prefix=nar%2F&continuation-token=a%2Bb', ''],
] as const)
  test(`SigV4: relonix and botocore sign the same S3 ${method} identically`, async () => {
    const sha = createHash('sha256').update(body).digest('hex');
    const headers = { 'x-amz-content-sha256': sha };
    const ours = await signedAuth(method, url, headers, body || undefined, 's3', '20240102T030405Z');
    const py = `
import sys, datetime, json
from unittest import mock
import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
fixed = datetime.datetime(2024, 1, 2, 3, 4, 5)
class FakeDT(datetime.datetime):
    @classmethod
    def utcnow(cls): return fixed
    @classmethod
    def now(cls, tz=None): return fixed.replace(tzinfo=tz) if tz else fixed
with mock.patch.object(botocore.auth.datetime, 'datetime', FakeDT):
    a = json.loads(sys.argv[1])
    req = AWSRequest(method=a['method'], url=a['url'], data=a['body'].encode(), headers=a['headers'])
    S3SigV4Auth(Credentials('${AKID}', '${SECRET}'), 's3', 'us-east-1').add_auth(req)
    print(req.headers['Authorization'])
`;
    const r = spawnSync(PY, ['-c', py, JSON.stringify({ method, url, body, headers })], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(ours, r.stdout.trim());
  });

/** SigV4 verification written from the specification, independent of relonix's signer. */
function expectedAuth(req: http.IncomingMessage, body: Buffer, secret: string): string | undefined {
  const auth = req.headers.authorization ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([^,]+), Signature=[0-9a-f]{64}$/.exec(auth);
  if (!m) return undefined;
  const [, akid, date, region, signed] = m;
  const amzDate = String(req.headers['x-amz-date']);
  const payload = String(req.headers['x-amz-content-sha256']);
  if (payload !== createHash('sha256').update(body).digest('hex')) return undefined;
  const u = new URL(req.url!, 'http://x');
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = [...u.searchParams.entries()]
    .map(([k, v]) => [enc(k), enc(v)])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : a[1]! < b[1]! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const names = signed!.split(';');
  const canonHeaders = names
    .map(
      (n) =>
        `${n}:${String(req.headers[n] ?? '')
          .trim()
          .replace(/\s+/g, ' ')}\n`,
    )
    .join('');
  const canon = [req.method, u.pathname, query, canonHeaders, signed, payload].join('\n');
  const scope = `${date}/${region}/s3/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canon).digest('hex')].join('\n');
  const h = (k: Buffer | string, d: string) => createHmac('sha256', k).update(d).digest();
  const key = h(h(h(h(`AWS4${secret}`, date!), region!), 's3'), 'aws4_request');
  return `AWS4-HMAC-SHA256 Credential=${akid}/${scope}, SignedHeaders=${signed}, Signature=${createHmac('sha256', key).update(sts).digest('hex')}`;
}

async function startS3(secret: string) {
  const objects = new Map<string, Buffer>();
  const written = new Map<string, Date>();
  let rejected = 0;
  let verified = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.headers.authorization !== expectedAuth(req, body, secret)) {
        rejected++;
        res.writeHead(403).end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
        return;
      }
      verified++;
      const u = new URL(req.url!, 'http://x');
      const parts = u.pathname.split('/').slice(1);
      const bucket = parts[0];
      const key = parts.slice(1).map(decodeURIComponent).join('/');
      if (bucket !== 'cache') return res.writeHead(404).end('<Error><Code>NoSuchBucket</Code></Error>');
      if (!key && req.method === 'GET' && u.searchParams.get('list-type') === '2') {
        const keys = [...objects.keys()].filter((k) => k.startsWith(u.searchParams.get('prefix') ?? '')).sort();
        res.writeHead(200, { 'content-type': 'application/xml' });
        return res.end(
          `<ListBucketResult><IsTruncated>false</IsTruncated>${keys
            .map(
              (k) => `<Contents><Key>${k}</Key><LastModified>${written.get(k)!.toISOString()}</LastModified><Size>${objects.get(k)!.length}</Size></Contents>`,
            )
            .join('')}</ListBucketResult>`,
        );
      }
      if (req.method === 'PUT') {
        objects.set(key, body);
        written.set(key, new Date());
        return res.writeHead(200).end();
      }
      if (req.method === 'DELETE') {
        objects.delete(key);
        return res.writeHead(204).end();
      }
      const o = objects.get(key);
      if (!o) return res.writeHead(404).end();
      res.writeHead(200, { 'content-length': o.length });
      res.end(req.method === 'HEAD' ? undefined : o);
    });
  });
  const { url, close } = await listenLoopback(server);
  return {
    endpoint: url,
    objects,
    stats: () => ({ rejected, verified }),
    close,
  };
}

test('publish to and restore from a loopback S3 endpoint that verifies every signature; gc over S3 listing', async () => {
  const dir = tempDir('s3');
  const s3 = await startS3('s3cret');
  const saved = { ...process.env };
  try {
    process.env.AWS_ACCESS_KEY_ID = 'AKIDTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong';
    const url = `s3://cache?endpoint=${encodeURIComponent(s3.endpoint)}&region=eu-west-1`;
    const s = makeStore(path.join(dir, 'p'));
    const { top, all } = buildClosure(s, 's3');
    const other = buildClosure(s, 's3other');
    const paths = await queryClosure({ layout: s.layout, nixStore: '/usr/bin/nix-store', env: s.env }, [top, other.top]);
    const k = generateKey('s3-1');
    // a wrong secret is refused by the endpoint, and publish says so
    await assert.rejects(publishPaths({ target: openTarget(url), storeDir: s.layout.storeDir, paths, key: parseSecretKey(k.secret), retries: 0 }), /403/);
    assert.ok(s3.stats().rejected > 0);
    process.env.AWS_SECRET_ACCESS_KEY = 's3cret';
    const r = await publishPaths({
      target: openTarget(url),
      storeDir: s.layout.storeDir,
      paths,
      key: parseSecretKey(k.secret),
      record: { system: 'x86_64-linux', nix: top },
    });
    assert.equal(r.uploaded, 4);
    assert.ok(s3.objects.has('relonix.json') && s3.objects.has('nix-cache-info'));
    const gc = await gcCache(openTarget(url), { keep: [top], keepFile: 'roots', graceSeconds: 0 });
    assert.deepEqual(gc.kept, all);
    assert.equal(gc.removedNarInfos.length, 2);
    assert.equal([...s3.objects.keys()].filter((x) => x.endsWith('.narinfo')).length, 2);
    await removePrefix(s.prefix);
    const res = await restoreFromCache({
      layout: makeStore(s.prefix).layout,
      caches: [url],
      trustedKeys: [k.public],
      system: 'x86_64-linux',
      nixStore: '/usr/bin/nix-store',
    });
    assert.deepEqual(res.paths.sort(), all);
    const f = makeStore(s.prefix);
    for (const p of all) assert.ok(isValid(f, p));
    assert.ok(s3.stats().verified > 10);
  } finally {
    process.env = saved;
    await s3.close();
    await removePrefix(dir);
  }
});
