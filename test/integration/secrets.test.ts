// Secrets stay secret: every command that takes a secret key, run with keys that are malformed in
// every way a user manages (no name, the key pasted for its file, halves that disagree) and with a
// good one, prints no byte of it in any encoding, on stdout, stderr, --json or RELONIX_DEBUG=1;
// credentials in a cache URL, a --header or the S3 environment are masked in every message, and a
// bootstrap writes them only to the prefix's netrc (0600), which relonix and Debian's Nix then use;
// keygen writes nothing outside --out and overwrites nothing without --force.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { generateKey } from '../../src/cache/keys.ts';
import { collect, EXIT, relonix, relonixWithHostNix, spawnRelonixWithHostNix } from '../helpers/cli.ts';
import { startServer, type TestServer } from '../helpers/http.ts';
import { prefixList, removePrefix, tempDir } from '../helpers/paths.ts';
import { buildClosure, makeStore, type TestStore } from '../helpers/store.ts';
import { requireTool } from '../helpers/tools.ts';

requireTool('nix-store');

const dir = tempDir('secrets');
const prefixes = prefixList();
const key = generateKey('leak-1');
const body = key.secret.slice(key.secret.indexOf(':') + 1);
const PASSWORD = 'Pw-0f-the-cache-4f1b9c';
const TOKEN = 'tok_8d7c6b5a4f3e2d1c';
const S3_SECRET = 's3-secret-9a8b7c6d5e4f';

/** Every encoding of the key material relonix could print: no 16-character piece of any may appear. */
function secretPieces(secretText: string): string[] {
  const raw = Buffer.from(secretText.slice(secretText.indexOf(':') + 1), 'base64');
  const seed = raw.subarray(0, 32);
  const encodings = [
    raw.toString('base64'),
    raw.toString('base64url'),
    raw.toString('hex'),
    seed.toString('base64'),
    seed.toString('base64url'),
    seed.toString('hex'),
  ];
  return encodings.flatMap((e) => Array.from({ length: e.length - 15 }, (_, i) => e.slice(i, i + 16)));
}

function assertNoLeak(out: string, pieces: string[], what: string): void {
  const leaked = pieces.find((p) => out.includes(p));
  assert.equal(leaked, undefined, `${what} printed key material:\n${out}`);
}

let origin: TestServer;
let cacheDir: string;
let s: TestStore;
let top: string;

before(async () => {
  s = makeStore(path.join(dir, 'p'));
  top = buildClosure(s, 'sec').top;
  cacheDir = path.join(dir, 'cache');
  const pub = relonixWithHostNix(
    [
      'publish',
      '--prefix',
      s.prefix,
      '--to',
      `file://${cacheDir}`,
      '--secret-key',
      await keyFile('good.secret', key.secret),
      '--nix-store',
      '/usr/bin/nix-store',
      top,
    ],
    { ...process.env, ...s.env, PATH: process.env.PATH },
  );
  assert.equal(pub.status, 0, pub.stderr);
  // the published cache, behind basic auth: alice and PASSWORD, nothing else
  const good = `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}`;
  origin = await startServer({
    dir: cacheDir,
    handler: (req, res) => {
      if (req.headers.authorization === good) return false;
      res
        .writeHead(401, { 'www-authenticate': 'Basic realm="cache"', 'content-type': 'text/html' })
        .end('<html><title>401 Authorization Required</title></html>');
      return true;
    },
  });
});

after(async () => {
  await origin?.close();
  await prefixes.removeAll();
  await removePrefix(dir);
});

async function keyFile(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await fs.writeFile(f, text, { mode: 0o600 });
  return f;
}

test('no command prints key material: malformed keys, a key pasted for its file, a good key that fails later, with --json and RELONIX_DEBUG=1', async () => {
  const other = generateKey('leak-1');
  const raw = Buffer.from(body, 'base64');
  const half = Buffer.concat([raw.subarray(0, 32), Buffer.from(other.public.split(':')[1]!, 'base64')]);
  const variants: [string, string, RegExp | undefined][] = [
    ['no name', await keyFile('noname.secret', `${body}\n`), /is not a Nix secret key: it is not of the form NAME:BASE64/],
    ['empty name', await keyFile('colon.secret', `:${body}`), /is not a Nix secret key/],
    ['short', await keyFile('short.secret', `leak-1:${raw.subarray(0, 63).toString('base64')}`), /it holds 63 bytes/],
    ['halves', await keyFile('halves.secret', `leak-1:${half.toString('base64')}`), /its public half does not match its seed/],
    ['pasted', key.secret, /looks like a key itself \(not printed here\)/],
    ['pasted body', body, /looks like a key itself/],
    ['good', path.join(dir, 'good.secret'), undefined],
  ];
  const prefix = path.join(dir, 'none');
  const commands = (f: string): string[][] => [
    ['publish', '--prefix', prefix, '--to', `file://${dir}/out`, '--secret-key', f],
    ['build', '--prefix', prefix, '--cache', `file://${dir}/out`, '--secret-key', f, '--json', '--', 'x.nix'],
    ['build', '--prefix', prefix, '--cache', `file://${dir}/out`, '--secret-key', f, '--', 'x.nix'],
    ['instantiate', '--prefix', prefix, '--cache', `file://${dir}/out`, '--secret-key', f, '--', 'x.nix'],
    [
      'translate',
      '--prefix',
      prefix,
      '--from',
      `file://${dir}/up`,
      '--from-key',
      key.public,
      '--to',
      `file://${dir}/out`,
      '--secret-key',
      f,
      '--json',
      `/nix/store/${'a'.repeat(32)}-x`,
    ],
  ];
  const pieces = secretPieces(key.secret);
  let runs = 0;
  for (const [name, file, said] of variants) {
    const results = await Promise.all(commands(file).map((args) => relonix(undefined, args, ['RELONIX_DEBUG=1']).then((r) => ({ args, r }))));
    for (const { args, r } of results) {
      const what = `${name}: ${args[0]}${args.includes('--json') ? ' --json' : ''}`;
      assert.notEqual(r.code, EXIT.ok, what);
      if (said) {
        assert.equal(r.code, EXIT.usage, `${what}: ${r.stderr}`);
        assert.match(r.stderr, said, what);
      }
      assertNoLeak(r.stdout + r.stderr, pieces, what);
      runs++;
    }
  }
  assert.equal(runs, variants.length * 5);

  // a secret key pasted where a public one goes: refused before nix.conf or the state is written
  const pasted = path.join(dir, 'pasted-trusted');
  const tk = await relonix(
    undefined,
    ['bootstrap', '--prefix', pasted, '--cache', `file://${dir}/out`, '--trusted-key', key.secret, '--json'],
    ['RELONIX_DEBUG=1'],
  );
  assert.equal(tk.code, EXIT.usage, tk.stderr);
  assert.match(tk.stderr, /the public key leak-1 is not a Nix public key: it is a secret key/);
  assertNoLeak(tk.stdout + tk.stderr, pieces, 'bootstrap --trusted-key');
  assert.equal(await fs.readdir(pasted).catch(() => undefined), undefined, 'nothing written');

  // keygen tells the public key and where the secret went, never the secret
  const kg = await relonix(undefined, ['keygen', '--name', 'fresh-1', '--out', path.join(dir, 'fresh')]);
  assert.equal(kg.code, 0, kg.stderr);
  const fresh = readFileSync(path.join(dir, 'fresh', 'fresh-1.secret'), 'utf8');
  assert.match(kg.stdout, /trusted key: fresh-1:/);
  assertNoLeak(kg.stdout + kg.stderr, secretPieces(fresh), 'keygen');
});

test('credentials in a cache URL: masked in every message, kept out of nix.conf and state.json, in a 0600 netrc that relonix and Nix read', async () => {
  const url = `http://alice:${PASSWORD}@127.0.0.1:${origin.port}/`;
  const p = await prefixes.add(undefined, 'cred');
  const r = await relonix(undefined, ['bootstrap', '--prefix', p, '--cache', url, '--trusted-key', key.public, '--json'], ['RELONIX_DEBUG=1']);
  // the cache holds no relonix.json: the restore ends there, after configure wrote the prefix's files
  assert.equal(r.code, EXIT.usage, r.stderr);
  assert.match(r.stdout, /names a Nix/);
  assert.ok(!(r.stdout + r.stderr).includes(PASSWORD), 'no message carries the password');
  const conf = readFileSync(path.join(p, 'etc/nix/nix.conf'), 'utf8');
  assert.match(conf, new RegExp(`^substituters = http://127\\.0\\.0\\.1:${origin.port}/$`, 'm'));
  for (const f of await fs.readdir(p, { recursive: true })) {
    const file = path.join(p, String(f));
    if (!(await fs.lstat(file)).isFile() || file.endsWith('etc/nix/netrc')) continue;
    assert.ok(!readFileSync(file, 'utf8').includes(PASSWORD), `${file} holds the password`);
  }
  const netrc = path.join(p, 'etc/nix/netrc');
  assert.equal((await fs.stat(netrc)).mode & 0o777, 0o600);
  assert.equal(readFileSync(netrc, 'utf8'), `machine 127.0.0.1 login alice password ${PASSWORD}\n`);
  assert.ok(
    origin.log.some((x) => x.path === '/relonix.json' && x.status === 404),
    'relonix asked for relonix.json with the credentials from the netrc (404, not 401)',
  );

  // Debian's Nix, with the prefix's conf dir, substitutes from the origin through that netrc
  await removePrefix(s.prefix);
  const fresh = makeStore(s.prefix);
  const realise = (confDir: string) =>
    collect(
      spawn(
        '/usr/bin/nix-store',
        [
          '-r',
          top,
          ...['--option', 'substituters', `http://127.0.0.1:${origin.port}/`],
          ...['--option', 'trusted-public-keys', key.public],
          ...['--option', 'narinfo-cache-negative-ttl', '0'],
          // one journal for both runs whatever each conf dir says: a database made with WAL cannot be opened without it
          ...['--option', 'use-sqlite-wal', 'false'],
        ],
        { env: { ...fresh.env, NIX_CONF_DIR: confDir } },
      ),
    );
  const without = await realise(fresh.layout.confDir);
  assert.notEqual(without.code, 0, 'without the netrc the origin refuses Nix');
  const withNetrc = await realise(path.join(p, 'etc/nix'));
  assert.equal(withNetrc.code, 0, withNetrc.stderr);
  assert.equal(withNetrc.stdout.trim(), top);
});

test('credentials in messages: a refused password, a --header token and S3 keys are never printed', async () => {
  const good = path.join(dir, 'good.secret');
  const p = path.join(dir, 'no-prefix');
  const base = `127.0.0.1:${origin.port}`;
  const leaksNone = (r: { code: number | null; stdout: string; stderr: string }, what: string, said: RegExp) => {
    assert.notEqual(r.code, EXIT.ok, what);
    assert.match(r.stdout + r.stderr, said, `${what}: ${r.stdout}${r.stderr}`);
    for (const secret of [PASSWORD, TOKEN, S3_SECRET]) assert.ok(!(r.stdout + r.stderr).includes(secret), `${what} printed ${secret}:\n${r.stdout}${r.stderr}`);
  };
  const runs: [string[], string[], RegExp][] = [
    [['build', '--prefix', p, '--cache', `http://alice:${PASSWORD}@${base}/`, '--secret-key', good, '--json', '--', 'x.nix'], [], /names none for/],
    [['cache', 'gc', '--to', `http://alice:${PASSWORD}@${base}/`, '--keep', good, '--header', `Authorization: Bearer ${TOKEN}`], [], /cannot be listed/],
    [['cache', 'gc', '--to', `http://alice:${PASSWORD}@${base}/`, '--keep', good, '--header', `Bearer ${TOKEN}`], [], /--header number 1 is not of the form/],
    [
      ['cache', 'gc', '--to', `s3://cache?endpoint=http://${base}&region=x`, '--keep', good],
      [`AWS_ACCESS_KEY_ID=AKID`, `AWS_SECRET_ACCESS_KEY=${S3_SECRET}`],
      /refused access/,
    ],
  ];
  for (const [args, env, said] of runs) leaksNone(await relonix(undefined, args, ['RELONIX_DEBUG=1', ...env]), args.slice(0, 2).join(' '), said);
  // a wrong password and a --header token, each refused by the origin
  const t = makeStore(path.join(dir, 'p3'));
  const path3 = buildClosure(t, 'cred3').top;
  const hostEnv = { ...process.env, ...t.env, PATH: process.env.PATH, RELONIX_DEBUG: '1' };
  const publishAs = (to: string, ...more: string[]) =>
    spawnRelonixWithHostNix(['publish', '--prefix', t.prefix, '--to', to, '--secret-key', good, '--nix-store', '/usr/bin/nix-store', ...more, path3], hostEnv)
      .done;
  leaksNone(await publishAs(`http://alice:${PASSWORD}x@${base}/`), 'publish with a wrong password', /HTTP 401 .*: the server refused access/);
  leaksNone(await publishAs(`http://${base}/`, '--header', `Authorization: Bearer ${TOKEN}`), 'publish with a refused token', /the server refused access/);
});

test('keygen: the name is a key name, nothing is written outside --out, nothing is replaced without --force', async () => {
  const out = path.join(dir, 'keys');
  for (const name of ['../escaped', 'a/b', '.hidden', 'two words', 'x:y']) {
    const r = await relonix(undefined, ['keygen', '--name', name, '--out', out]);
    assert.equal(r.code, EXIT.usage, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /cannot be a key name/);
  }
  assert.deepEqual(await fs.readdir(out).catch((): string[] => []), []);
  assert.ok(!(await fs.readdir(dir)).some((n) => n.startsWith('escaped')), 'nothing beside --out');

  const first = await relonix(undefined, ['keygen', '--name', 'k-1', '--out', out]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal((await fs.stat(path.join(out, 'k-1.secret'))).mode & 0o777, 0o600);
  const was = readFileSync(path.join(out, 'k-1.public'), 'utf8');
  await fs.rm(path.join(out, 'k-1.secret'));
  const again = await relonix(undefined, ['keygen', '--name', 'k-1', '--out', out]);
  assert.equal(again.code, EXIT.usage, again.stderr);
  assert.match(again.stderr, /k-1\.public already exists/);
  assert.match(again.stderr, /--force/);
  assert.equal(readFileSync(path.join(out, 'k-1.public'), 'utf8'), was, 'the public key is untouched');

  // --force replaces a symlink at the name, never what it points at
  const target = path.join(dir, 'not-yours');
  await fs.writeFile(target, 'keep me');
  await fs.symlink(target, path.join(out, 'k-1.secret'));
  const forced = await relonix(undefined, ['keygen', '--name', 'k-1', '--out', out, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(readFileSync(target, 'utf8'), 'keep me');
  const st = await fs.lstat(path.join(out, 'k-1.secret'));
  assert.ok(st.isFile() && (st.mode & 0o777) === 0o600);
  assert.notEqual(readFileSync(path.join(out, 'k-1.public'), 'utf8'), was);
  assert.equal(readFileSync(path.join(out, 'k-1.secret'), 'utf8').split(':')[0], 'k-1');
});
