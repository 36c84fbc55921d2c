// What careless and hostile input does to a cache, against caches Debian's Nix store published to:
// cache gc never leaves a file cache through a symlink nor removes what is not a regular file;
// refuses a keep set that names nothing, keeps the Nix relonix.json names, asks before removing most
// of a cache; leaves alone what is younger than the grace period, so a publish running beside it
// ends with a consistent cache; publish reads back what it uploaded before relonix.json names it;
// and each HTTP answer, bad option value and wrong --as-nix gets its own sentence and exit code.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseSecretKey } from '../../src/cache/keys.ts';
import { queryClosure } from '../../src/cache/nixstore.ts';
import { publishPaths } from '../../src/cache/publish.ts';
import { openTarget } from '../../src/cache/targets.ts';
import { nixSystem } from '../../src/util/system.ts';
import { EXIT, relonixWithHostNix, spawnRelonixWithHostNix } from '../helpers/cli.ts';
import { startServer, type TestServer } from '../helpers/http.ts';
import { removePrefix, tempDir } from '../helpers/paths.ts';
import { assertConsistent, buildClosure, makeStore, type TestStore, writeKey } from '../helpers/store.ts';
import { requireTool } from '../helpers/tools.ts';

requireTool('nix-store');
requireTool('mkfifo', 'coreutils');

const dir = tempDir('cache-safety');
const template = path.join(dir, 'template');
const system = nixSystem();
let s: TestStore;
let secret: string;
let closures: Record<'a' | 'b' | 'c' | 'd' | 'e' | 'nix', { top: string; all: string[] }>;
let nix: string;
let hostEnv: NodeJS.ProcessEnv;

const publish = (args: string[]) =>
  relonixWithHostNix(['publish', '--prefix', s.prefix, '--secret-key', secret, '--nix-store', '/usr/bin/nix-store', '--compression', 'none', ...args], hostEnv);

/** publish run beside this process's own loopback origins, which must go on answering meanwhile */
const publishTo = async (args: string[]) => {
  const r = await spawnRelonixWithHostNix(
    ['publish', '--prefix', s.prefix, '--secret-key', secret, '--nix-store', '/usr/bin/nix-store', '--compression', 'none', ...args],
    hostEnv,
  ).done;
  return { status: r.code, stderr: r.stderr, stdout: r.stdout };
};

const gc = (cache: string, keep: string, ...more: string[]) => relonixWithHostNix(['cache', 'gc', '--to', `file://${cache}`, '--keep', keep, ...more]);

before(async () => {
  s = makeStore(path.join(dir, 'p'));
  hostEnv = { ...process.env, ...s.env, PATH: process.env.PATH };
  closures = {
    a: buildClosure(s, 'a'),
    b: buildClosure(s, 'b'),
    c: buildClosure(s, 'c'),
    d: buildClosure(s, 'd'),
    e: buildClosure(s, 'e'),
    nix: buildClosure(s, 'nix', { nix: true }),
  };
  nix = closures.nix.top;
  secret = path.join(dir, 'k.secret');
  await writeKey(secret, 'safety-1');
  // five closures of two paths each: a, b, c, e, and the Nix relonix.json names
  const r = publish(['--to', `file://${template}`, '--as-nix', nix, closures.a.top, closures.b.top, closures.c.top, closures.e.top]);
  assert.equal(r.status, 0, r.stderr);
});

after(() => removePrefix(dir));

let copies = 0;
/** A fresh copy of the published cache, everything in it last written two hours ago. */
async function oldCache(): Promise<string> {
  const c = path.join(dir, `cache-${++copies}`);
  execFileSync('cp', ['-a', template, c]);
  const then = new Date(Date.now() - 2 * 3600_000);
  for (const f of await fs.readdir(c, { recursive: true })) await fs.utimes(path.join(c, String(f)), then, then);
  return c;
}

async function keepFile(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await fs.writeFile(f, text);
  return f;
}

const listing = async (c: string) => (await fs.readdir(c, { recursive: true })).map(String).sort();
const narinfo = (p: string) => `${path.basename(p).slice(0, 32)}.narinfo`;

test('gc never follows a symlink out of a file cache and removes no symlink or FIFO; publish never writes through one', async () => {
  const cache = await oldCache();
  const outside = path.join(dir, 'outside');
  await fs.mkdir(path.join(outside, 'deeper'), { recursive: true });
  await fs.writeFile(path.join(outside, 'precious'), 'mine');
  await fs.writeFile(path.join(outside, 'deeper', 'also.nar'), 'mine too');
  await fs.symlink(outside, path.join(cache, 'nar', 'evil'));
  await fs.symlink(path.join(outside, 'precious'), path.join(cache, 'nar', 'victim.nar'));
  execFileSync('mkfifo', [path.join(cache, 'nar', 'pipe.nar')]);
  const keep = await keepFile('keep-1', `${closures.a.top}\n`);
  const r = gc(cache, keep, '--grace', '0', '--yes');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(path.join(outside, 'precious'), 'utf8'), 'mine');
  assert.equal(readFileSync(path.join(outside, 'deeper', 'also.nar'), 'utf8'), 'mine too');
  for (const n of ['evil', 'victim.nar', 'pipe.nar']) {
    assert.ok((await fs.lstat(path.join(cache, 'nar', n)).catch(() => undefined)) !== undefined, `${n} is left alone`);
    assert.match(r.stderr, new RegExp(`left alone: nar/${n.replace('.', '\\.')} \\(`));
  }
  assert.ok(readFileSync(path.join(cache, narinfo(closures.a.top))).length > 0, 'the kept path stays');
  await assertConsistent(cache);

  // a cache whose nar/ leads elsewhere: publish refuses before writing a byte there
  const linked = path.join(dir, 'linked-cache');
  const elsewhere = path.join(dir, 'elsewhere');
  await fs.mkdir(linked);
  await fs.mkdir(elsewhere);
  await fs.symlink(elsewhere, path.join(linked, 'nar'));
  const p = publish(['--to', `file://${linked}`, closures.d.top]);
  assert.equal(p.status, EXIT.usage, p.stderr);
  assert.match(p.stderr, /is under a symlink to .*, outside the cache/);
  assert.deepEqual(await fs.readdir(elsewhere), []);
});

test('gc refuses a keep set that names nothing, keeps the Nix relonix.json names, and asks before removing most of a cache', async () => {
  const cache = await oldCache();
  const before = await listing(cache);
  const other = `${path.dirname(path.dirname(closures.a.top))}/elsewhere/${path.basename(closures.a.top)}`;
  const nothing = {
    empty: '',
    comments: '# nothing yet\n\n   \n',
    unknown: `${s.layout.storeDir}/${'z'.repeat(32)}-gone\n${s.layout.storeDir}/${'y'.repeat(32)}-typo\n`,
    'other-store': `${other}\n`,
  };
  for (const [name, text] of Object.entries(nothing)) {
    const r = gc(cache, await keepFile(`keep-${name}`, text), '--grace', '0', '--yes');
    assert.equal(r.status, EXIT.usage, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /so gc would remove all 10 paths of the cache; nothing was removed/, name);
    assert.deepEqual(await listing(cache), before, `${name}: nothing removed`);
  }
  assert.match(gc(cache, path.join(dir, 'keep-unknown'), '--grace', '0').stderr, /none of the 2 store paths in .*keep-unknown is in file:\/\//);

  // keeping a: b, c and e would go, 6 of 10 paths: the summary, and nothing removed without --yes
  const keep = await keepFile('keep-a', `# the one to keep\n${closures.a.top}\n`);
  const most = gc(cache, keep, '--grace', '0');
  assert.equal(most.status, EXIT.usage, most.stderr);
  assert.match(most.stderr, /gc would remove 6 of 10 paths \(6 narinfos, 6 NARs, [\d.]+ MiB\) of file:\/\/.*: more than half of it; nothing was removed/);
  assert.match(most.stderr, /--yes/);
  const dry = gc(cache, keep, '--grace', '0', '--dry-run');
  assert.equal(dry.status, 0, dry.stderr);
  assert.equal((dry.stdout.match(/^would remove /gm) ?? []).length, 12, dry.stdout);
  assert.match(dry.stderr, /more than half of the cache: without --dry-run, gc removes it only with --yes/);
  assert.deepEqual(await listing(cache), before, 'a dry run removes nothing');
  const yes = gc(cache, keep, '--grace', '0', '--yes');
  assert.equal(yes.status, 0, yes.stderr);
  assert.match(yes.stdout, /kept 4 paths; removed 6 of 10 paths/);
  const manifest = JSON.parse(readFileSync(path.join(cache, 'relonix.json'), 'utf8'));
  assert.equal(manifest.nix[system].path, nix, 'relonix.json still names the Nix');
  for (const p of [...closures.a.all, ...closures.nix.all]) assert.ok(readFileSync(path.join(cache, narinfo(p))).length > 0, `${p} kept`);
  const after = await listing(cache);
  for (const p of [...closures.b.all, ...closures.c.all, ...closures.e.all]) assert.ok(!after.includes(narinfo(p)), `${p} removed`);
  await assertConsistent(cache);

  // the Nix goes only when asked, relonix.json first
  const drop = gc(cache, keep, '--grace', '0', '--drop-nix', system);
  assert.equal(drop.status, 0, drop.stderr);
  assert.deepEqual(JSON.parse(readFileSync(path.join(cache, 'relonix.json'), 'utf8')).nix, {});
  for (const p of closures.nix.all) assert.ok(!(await listing(cache)).includes(narinfo(p)), `${p} removed`);
});

test('gc beside a publish: nothing younger than --grace goes, so the publish ends with a consistent cache', async () => {
  const cache = await oldCache();
  // a NAR that no narinfo names yet, just uploaded, and an old one a killed publish left
  await fs.writeFile(path.join(cache, 'nar', 'fresh.nar'), 'fresh');
  await fs.writeFile(path.join(cache, 'nar', 'stale.nar'), 'stale');
  const then = new Date(Date.now() - 2 * 3600_000);
  await fs.utimes(path.join(cache, 'nar', 'stale.nar'), then, then);
  const keep = await keepFile('keep-race', `${closures.a.top}\n`);

  // publish d, held after its first NAR is up and before any narinfo names it, while gc runs
  const target = openTarget(`file://${cache}`);
  let release!: () => void;
  let held!: () => void;
  const heldNow = new Promise<void>((r) => (held = r));
  const gate = new Promise<void>((r) => (release = r));
  const put = target.put.bind(target);
  target.put = async (key, data, type) => {
    if (key.endsWith('.narinfo')) {
      held();
      await gate;
    }
    return put(key, data, type);
  };
  const paths = await queryClosure({ layout: s.layout, nixStore: '/usr/bin/nix-store', env: s.env }, [closures.d.top]);
  const publishing = publishPaths({
    target,
    storeDir: s.layout.storeDir,
    paths,
    key: parseSecretKey(readFileSync(secret, 'utf8')),
    compression: 'none',
    jobs: 1,
  });
  await heldNow;
  const r = gc(cache, keep, '--yes');
  release();
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /younger than 1h kept/);
  const published = await publishing;
  assert.equal(published.uploaded, 2);
  assert.equal(await assertConsistent(cache), 6, 'a, d and the Nix, each with its NAR');
  const left = await listing(cache);
  assert.ok(left.includes(path.join('nar', 'fresh.nar')), 'a NAR younger than the grace period stays');
  assert.ok(!left.includes(path.join('nar', 'stale.nar')), 'an old NAR no narinfo names goes');
});

/** An origin that answers every upload with 204 and keeps only what `keeps` accepts. */
async function forgetfulOrigin(keeps: (key: string) => boolean): Promise<TestServer> {
  const kept = new Map<string, Buffer>();
  return startServer({
    handler: async (req: http.IncomingMessage, res: http.ServerResponse) => {
      const key = decodeURIComponent(new URL(req.url!, 'http://x').pathname.slice(1));
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (req.method === 'PUT') {
        if (keeps(key)) kept.set(key, Buffer.concat(chunks));
        res.writeHead(204).end();
      } else if (kept.has(key)) res.writeHead(200, { 'content-length': kept.get(key)!.length }).end(req.method === 'HEAD' ? undefined : kept.get(key));
      else res.writeHead(404).end();
      return true;
    },
  });
}

test('publish reads back what it uploaded: an origin that answers 204 and keeps nothing is an error, and relonix.json names nothing', async () => {
  for (const [what, keeps] of [
    ['nothing', () => false],
    ['narinfos only', (k: string) => !k.startsWith('nar/')],
  ] as const) {
    const origin = await forgetfulOrigin(keeps);
    try {
      const r = await publishTo(['--to', origin.url, '--as-nix', nix]);
      assert.equal(r.status, EXIT.failure, `${what}: ${r.stderr}`);
      assert.match(r.stderr, /is missing(, which \w+\.narinfo names)? after it was uploaded with success: the server does not keep what it is sent/, what);
      assert.deepEqual(
        origin.log.filter((x) => x.path === '/relonix.json' && x.method === 'PUT'),
        [],
        `${what}: relonix.json is never written`,
      );
    } finally {
      await origin.close();
    }
  }
});

test('HTTP words: refused credentials and an origin that takes no uploads each have their sentence and code, not network failure', async () => {
  const nginxPage =
    '<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n<center><h1>405 Not Allowed</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
  const answers: [number, string, RegExp][] = [
    [401, 'Unauthorized', /HTTP 401 Unauthorized: the server refused access with the credentials given/],
    [
      403,
      '<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
      /HTTP 403 Forbidden \(AccessDenied: Access Denied\): the server refused access/,
    ],
    [405, nginxPage, /HTTP 405 Method Not Allowed: the server does not take this request; an origin that only serves files takes no uploads/],
    [501, 'not implemented', /HTTP 501 Not Implemented: the server does not take this request/],
  ];
  for (const [status, body, sentence] of answers) {
    const origin = await startServer({
      handler: (req, res) => {
        if (req.method === 'PUT') res.writeHead(status, { 'content-type': body.startsWith('<html') ? 'text/html' : 'text/plain' }).end(body);
        else res.writeHead(404).end();
        return true;
      },
    });
    try {
      const r = await publishTo(['--to', origin.url, closures.d.top]);
      assert.equal(r.status, EXIT.usage, `${status}: ${r.stderr}`);
      assert.match(r.stderr, sentence, String(status));
      assert.doesNotMatch(r.stderr, /<[a-z/]/i, 'no markup');
      assert.doesNotMatch(r.stderr, /network/i);
      assert.equal(origin.log.filter((x) => x.method === 'PUT').length, 1, `${status} is not retried`);
    } finally {
      await origin.close();
    }
  }
});

test('--jobs, --grace and --wait take one rule everywhere; --as-nix must name a Nix', async () => {
  const cases: [string[], RegExp][] = [];
  for (const bad of ['0', 'abc', '-3']) {
    cases.push(
      [['publish', '--to', 'file:///nonexistent', '--secret-key', secret, '--jobs', bad], /--jobs takes a whole number from 1 to 1024, got "-?\w+"/],
      [['translate', '--to', 'file:///nonexistent', '--secret-key', secret, '--jobs', bad, '/nix/store/x'], /--jobs takes a whole number from 1 to 1024/],
      [['builder', 'add', '--jobs', bad, 'ssh://b@127.0.0.1'], /--jobs takes a whole number from 1 to 1024/],
    );
  }
  cases.push(
    [['cache', 'gc', '--to', 'file:///nonexistent', '--keep', secret, '--grace', '1y'], /--grace takes a duration/],
    [
      ['build', '--cache', 'file:///nonexistent', '--secret-key', secret, '--grace', '-1', '--', 'x.nix'],
      /--grace takes a number of seconds, 0 or more, got "-1"/,
    ],
    [['bootstrap', '--prefix', path.join(dir, 'never'), '--wait', 'soon'], /--wait takes a number of seconds/],
  );
  for (const [args, message] of cases) {
    const r = relonixWithHostNix(args);
    assert.equal(r.status, EXIT.usage, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  const cache = path.join(dir, 'as-nix');
  const r = publish(['--to', `file://${cache}`, '--as-nix', closures.d.top]);
  assert.equal(r.status, EXIT.usage, r.stderr);
  assert.match(r.stderr, /has no bin\/nix-store, so it is not a Nix/);
  assert.ok(!(await fs.readdir(cache).catch((): string[] => [])).includes('relonix.json'));
});
