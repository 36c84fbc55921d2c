// The cache format against Debian's Nix: keys both ways, NAR hashes, caches published by relonix
// verified and substituted from by Nix, caches written by `nix copy` restored by relonix, and the
// refusals (tampered narinfo, wrong key) that must leave nothing registered.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { closureNarInfos } from '../../src/cache/closure.ts';
import { gcCache } from '../../src/cache/gc.ts';
import { generateKey, parsePublicKey, parseSecretKey, signNarInfo, verifyNarInfo } from '../../src/cache/keys.ts';
import { fingerprint, formatNarInfo, parseNarInfo } from '../../src/cache/narinfo.ts';
import { queryClosure } from '../../src/cache/nixstore.ts';
import { publishPaths } from '../../src/cache/publish.ts';
import { restoreClosure, restoreFromCache } from '../../src/cache/restore.ts';
import { restoreFiles, restoreRun } from '../../src/cache/restore-nar.ts';
import { openTarget } from '../../src/cache/targets.ts';
import { unpackNar } from '../../src/store/nar/unpack.ts';
import { dumpPath, narDigest } from '../../src/store/nar/write.ts';
import { toNixBase32 } from '../../src/store/nixbase32.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { EXIT, relonixWithHostNix as relonix } from '../helpers/cli.ts';
import { startServer } from '../helpers/http.ts';
import { removePrefix, tempDir } from '../helpers/paths.ts';
import { buildClosure, isValid, makeStore, storeEntries, type TestStore, verifyCache, writeKey } from '../helpers/store.ts';
import { requireTool } from '../helpers/tools.ts';

requireTool('nix-store');
requireTool('xz');
requireTool('zstd');

async function publishStore(
  s: TestStore,
  cacheUrl: string,
  secretFile: string,
  roots: string[],
  record?: { system: string; nix: string },
  compression?: 'zstd' | 'xz' | 'none',
) {
  const paths = await queryClosure({ layout: s.layout, nixStore: '/usr/bin/nix-store', env: s.env }, roots);
  return publishPaths({
    target: openTarget(cacheUrl),
    storeDir: s.layout.storeDir,
    paths,
    key: parseSecretKey(await fs.readFile(secretFile, 'utf8')),
    record,
    compression,
    minRetryDelayMs: 10,
  });
}

test('keys: Nix keys sign for relonix, relonix keys verify in Nix, and signatures agree', async () => {
  const dir = tempDir('keys');
  const s = makeStore(dir);
  s.nix(['--generate-binary-cache-key', 'nixkey-1', `${dir}/nix.secret`, `${dir}/nix.public`]);
  const sk = parseSecretKey(readFileSync(`${dir}/nix.secret`, 'utf8'));
  assert.equal(sk.publicKey, readFileSync(`${dir}/nix.public`, 'utf8').trim());
  const r = relonix(['keygen', '--name', 'rx-1', '--out', dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((await fs.stat(`${dir}/rx-1.secret`)).mode & 0o777, 0o600);
  const again = relonix(['keygen', '--name', 'rx-1', '--out', dir]);
  assert.notEqual(again.status, 0, 'an existing secret must not be overwritten');
  const rk = parseSecretKey(readFileSync(`${dir}/rx-1.secret`, 'utf8'));
  assert.equal(rk.publicKey, readFileSync(`${dir}/rx-1.public`, 'utf8').trim());
  // a narinfo signed by relonix with Nix's key is verified with Nix's public key, and vice versa
  const ni = parseNarInfo(
    `StorePath: ${s.layout.storeDir}/${'0'.repeat(32)}-x\nURL: nar/a.nar\nCompression: none\nNarHash: sha256:${toNixBase32(Buffer.alloc(32, 7))}\nNarSize: 8\nReferences: ${'1'.repeat(32)}-y\n`,
  );
  ni.sigs = [signNarInfo(ni, sk)];
  assert.equal(verifyNarInfo(ni, [parsePublicKey(readFileSync(`${dir}/nix.public`, 'utf8'))]), 'nixkey-1');
  assert.equal(verifyNarInfo(ni, [parsePublicKey(rk.publicKey)]), undefined);
  assert.match(fingerprint(ni), new RegExp(`^1;${s.layout.storeDir}/0{32}-x;sha256:[0-9a-z]{52};8;${s.layout.storeDir}/1{32}-y$`));
  assert.deepEqual(parseNarInfo(formatNarInfo(ni)), ni);
  const g = generateKey('gen');
  assert.equal(Buffer.from(g.secret.split(':')[1]!, 'base64').length, 64);
  await removePrefix(dir);
});

test('NAR: relonix unpacks what nix-store --dump writes, with the same hash as nix-hash', async () => {
  const dir = tempDir('nar');
  const s = makeStore(dir);
  const { top } = buildClosure(s, 'nar');
  const nar = spawnSync('/usr/bin/nix-store', ['--dump', top], { env: s.env, maxBuffer: 1 << 28 }).stdout;
  const parts: Buffer[] = [];
  for await (const c of dumpPath(top)) parts.push(c);
  const ours = Buffer.concat(parts);
  assert.ok(ours.equals(nar), 'dumpPath must equal nix-store --dump byte for byte');
  const res = await unpackNar([nar.subarray(0, 1000), nar.subarray(1000)], path.join(dir, 'out'));
  assert.equal(res.size, nar.length);
  assert.equal(toNixBase32(res.hash), s.nix(['--type', 'sha256', '--base32', top], 'nix-hash'));
  assert.ok((await narDigest(path.join(dir, 'out'))).hash.equals(res.hash));
  assert.equal((await fs.stat(path.join(dir, 'out', 'bin', 'x'))).mode & 0o777, 0o555);
  // names Nix refuses are refused: swap an entry name for ".."
  const bad = Buffer.from(nar);
  const at = bad.indexOf(Buffer.from('link\0\0\0\0'));
  Buffer.from('..\0\0\0\0\0\0').copy(bad, at);
  bad.writeBigUInt64LE(2n, at - 8);
  await assert.rejects(unpackNar([bad], path.join(dir, 'bad')), /invalid entry name/);
  await assert.rejects(unpackNar([nar.subarray(0, nar.length - 8)], path.join(dir, 'short')), /ends/);
  await removePrefix(dir);
});

test('publish --compression xz → nix store verify → Debian Nix substitutes with require-sigs; incremental; gc', async () => {
  const dir = tempDir('pub');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const { top, all } = buildClosure(s, 'pub');
  const extra = buildClosure(s, 'other');
  const k = relonix(['keygen', '--name', 'c1', '--out', dir]);
  assert.equal(k.status, 0, k.stderr);
  const pub = readFileSync(`${dir}/c1.public`, 'utf8').trim();
  const r = relonix(
    [
      'publish',
      '--prefix',
      s.prefix,
      '--to',
      `file://${cache}`,
      '--secret-key',
      `${dir}/c1.secret`,
      '--nix-store',
      '/usr/bin/nix-store',
      '--compression',
      'xz',
      top,
      extra.top,
    ],
    { ...process.env, ...s.env, PATH: process.env.PATH },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /published 4 NARs \(\d+ bytes, compression xz\)/);
  for (const n of (await fs.readdir(cache)).filter((x) => x.endsWith('.narinfo'))) {
    const ni = parseNarInfo(await fs.readFile(path.join(cache, n), 'utf8'));
    assert.equal(ni.compression, 'xz');
    assert.match(ni.url, /^nar\/[0-9a-z]{52}\.nar\.xz$/);
  }
  const v = verifyCache(s, `file://${cache}`, pub);
  assert.equal(v.status, 0, v.stderr);
  assert.equal((v.stderr.match(/checking '/g) ?? []).length, 4, v.stderr);
  const wrong = verifyCache(s, `file://${cache}`, generateKey('c1').public);
  assert.notEqual(wrong.status, 0, 'Nix must reject our signatures under another key');
  // incremental: nothing new goes up
  const again = relonix(
    ['publish', '--prefix', s.prefix, '--to', `file://${cache}`, '--secret-key', `${dir}/c1.secret`, '--nix-store', '/usr/bin/nix-store', top],
    { ...process.env, ...s.env, PATH: process.env.PATH },
  );
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /published 0 NARs .* skipped 2/);
  // a fresh store with the same store dir substitutes from the cache with signatures required
  await removePrefix(s.prefix);
  const f = makeStore(s.prefix);
  const sub = f.run('/usr/bin/nix-store', [
    '-r',
    top,
    '--option',
    'substituters',
    `file://${cache}`,
    '--option',
    'trusted-public-keys',
    pub,
    '--option',
    'require-sigs',
    'true',
  ]);
  assert.equal(sub.status, 0, sub.stderr);
  for (const p of all) assert.ok(isValid(f, p), `${p} substituted`);
  assert.equal(f.run('/usr/bin/nix-store', ['--verify', '--check-contents']).status, 0);
  // gc keeps exactly the closure of the kept roots
  const keep = path.join(dir, 'keep');
  await fs.writeFile(keep, `${top}\n`);
  const dry = relonix(['cache', 'gc', '--to', `file://${cache}`, '--keep', keep, '--dry-run']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.equal((await fs.readdir(cache)).filter((n) => n.endsWith('.narinfo')).length, 4);
  const gc = await gcCache(openTarget(`file://${cache}`), { keep: [top], keepFile: keep, graceSeconds: 0 });
  assert.deepEqual(gc.kept, all);
  assert.equal(gc.removedNarInfos.length, 2);
  assert.equal(gc.removedNars.length, 2);
  const left = (await fs.readdir(cache)).filter((n) => n.endsWith('.narinfo')).sort();
  assert.deepEqual(left, all.map((p) => `${path.basename(p).slice(0, 32)}.narinfo`).sort());
  assert.equal((await fs.readdir(path.join(cache, 'nar'))).length, 2);
  const v2 = verifyCache(f, `file://${cache}`, pub);
  assert.equal(v2.status, 0, v2.stderr);
  await removePrefix(dir);
});

test('publish --compression zstd → nix store verify → Debian Nix substitutes with require-sigs; auto picks zstd', async () => {
  const dir = tempDir('pubz');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const { top, all } = buildClosure(s, 'pubz');
  const extra = buildClosure(s, 'otherz');
  const k = await writeKey(`${dir}/z1.secret`, 'z1');
  const env = { ...process.env, ...s.env, PATH: process.env.PATH };
  const publish = (args: string[]) =>
    relonix(
      ['publish', '--prefix', s.prefix, '--to', `file://${cache}`, '--secret-key', `${dir}/z1.secret`, '--nix-store', '/usr/bin/nix-store', ...args],
      env,
    );
  const r = publish(['--compression', 'zstd', top]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /published 2 NARs \(\d+ bytes, compression zstd\)/);
  // auto (the default) is zstd on a host with zstd, and says so
  const auto = publish([extra.top]);
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /published 2 NARs \(\d+ bytes, compression zstd\)/);
  const names = (await fs.readdir(cache)).filter((x) => x.endsWith('.narinfo'));
  assert.equal(names.length, 4);
  for (const n of names) {
    const ni = parseNarInfo(await fs.readFile(path.join(cache, n), 'utf8'));
    assert.equal(ni.compression, 'zstd');
    assert.match(ni.url, /^nar\/[0-9a-z]{52}\.nar\.zst$/);
    const file = await fs.readFile(path.join(cache, ni.url));
    assert.equal(file.readUInt32LE(0), 0xfd2fb528, `${ni.url} is a zstd frame`);
    assert.equal(file.length, ni.fileSize);
  }
  // nothing staged is left behind
  assert.deepEqual(
    (await fs.readdir(cache)).filter((x) => x.startsWith('.')),
    [],
  );
  assert.deepEqual(
    (await fs.readdir(path.join(cache, 'nar'))).filter((x) => x.startsWith('.')),
    [],
  );
  const v = verifyCache(s, `file://${cache}`, k.public);
  assert.equal(v.status, 0, v.stderr);
  assert.equal((v.stderr.match(/checking '/g) ?? []).length, 4, v.stderr);
  // a fresh store with the same store dir substitutes from the zstd cache with signatures required
  await removePrefix(s.prefix);
  const f = makeStore(s.prefix);
  const sub = f.run('/usr/bin/nix-store', [
    '-r',
    top,
    extra.top,
    '--option',
    'substituters',
    `file://${cache}`,
    '--option',
    'trusted-public-keys',
    k.public,
    '--option',
    'require-sigs',
    'true',
  ]);
  assert.equal(sub.status, 0, sub.stderr);
  for (const p of [...all, ...extra.all]) assert.ok(isValid(f, p), `${p} substituted`);
  assert.equal(f.run('/usr/bin/nix-store', ['--verify', '--check-contents']).status, 0);
  await removePrefix(dir);
});

/** Every path registered in the store under `prefix`, its contents as registered (Debian's Nix checks); that store. */
function assertRestored(prefix: string, paths: string[]): TestStore {
  const f = makeStore(prefix);
  for (const p of paths) assert.ok(isValid(f, p), `${p} is registered`);
  assert.equal(f.run('/usr/bin/nix-store', ['--verify', '--check-contents']).status, 0);
  return f;
}

test('publish --compression zstd on a host without zstd is refused with the fix, before any upload', async () => {
  const dir = tempDir('nozstd');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const { top } = buildClosure(s, 'nozstd');
  await writeKey(`${dir}/k.secret`, 'nz');
  const env = { ...process.env, ...s.env, PATH: process.env.PATH, RELONIX_NO_HOST_ZSTD: '1' };
  const args = ['publish', '--prefix', s.prefix, '--to', `file://${cache}`, '--secret-key', `${dir}/k.secret`, '--nix-store', '/usr/bin/nix-store'];
  const r = relonix([...args, '--compression', 'zstd', top], env);
  assert.equal(r.status, EXIT.usage, r.stderr);
  assert.match(r.stderr, /zstd/);
  assert.match(r.stderr, /install zstd/);
  assert.match(r.stderr, /--compression xz/);
  assert.ok(!existsSync(cache), 'nothing was written');
  // auto falls back to xz there
  const auto = relonix([...args, top], env);
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /compression xz/);
  await removePrefix(dir);
});

test('a host zstd that is there but fails: auto publishes with xz and says which and why, an explicit zstd is refused before any upload; with xz failing too, auto publishes uncompressed', async () => {
  const dir = tempDir('badzstd');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const first = buildClosure(s, 'badzstd');
  const second = buildClosure(s, 'badboth');
  const k = await writeKey(`${dir}/k.secret`, 'bz');
  // what a host with a program whose library is gone has first on PATH
  const failing = async (sub: string, tools: string[]) => {
    const d = path.join(dir, sub);
    await fs.mkdir(d);
    for (const t of tools)
      await fs.writeFile(
        path.join(d, t),
        `#!/bin/sh\necho "${t}: error while loading shared libraries: lib${t}.so.1: cannot open shared object file" >&2\nexit 127\n`,
        {
          mode: 0o755,
        },
      );
    return { ...process.env, ...s.env, PATH: `${d}:${process.env.PATH}` };
  };
  const args = ['publish', '--prefix', s.prefix, '--to', `file://${cache}`, '--secret-key', `${dir}/k.secret`, '--nix-store', '/usr/bin/nix-store'];
  const zstdFails = await failing('zstd-fails', ['zstd']);
  const explicit = relonix([...args, '--compression', 'zstd', first.top], zstdFails);
  assert.equal(explicit.status, EXIT.failure, explicit.stderr);
  assert.match(explicit.stderr, /the host's zstd \(\S+\/zstd-fails\/zstd\) does not work here: zstd: error while loading shared libraries: libzstd\.so\.1/);
  assert.match(explicit.stderr, /repair it or take it off PATH, or publish with --compression auto/);
  assert.ok(!existsSync(cache), 'nothing was written');

  const auto = relonix([...args, first.top], zstdFails);
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /published 2 NARs \(\d+ bytes, compression xz\)/);
  assert.match(
    auto.stderr,
    /the host's zstd \(\S+\/zstd\) does not work here \(zstd: error while loading shared libraries[^)]*\): NARs are published with xz instead; repair it or take it off PATH \(or set RELONIX_NO_HOST_ZSTD=1\)/,
  );

  const bothFail = await failing('both-fail', ['zstd', 'xz']);
  const none = relonix([...args, second.top], bothFail);
  assert.equal(none.status, 0, none.stderr);
  assert.match(none.stdout, /published 2 NARs \(\d+ bytes, compression none\)/);
  for (const t of ['zstd', 'xz'])
    assert.match(none.stderr, new RegExp(`the host's ${t} \\(\\S+\\) does not work here \\([^)]*\\): NARs are published uncompressed instead`));

  const compressions = new Map<string, string>();
  for (const n of (await fs.readdir(cache)).filter((x) => x.endsWith('.narinfo'))) {
    const ni = parseNarInfo(await fs.readFile(path.join(cache, n), 'utf8'));
    compressions.set(ni.storePath, ni.compression);
  }
  assert.deepEqual([...compressions].sort(), [...first.all.map((p) => [p, 'xz']), ...second.all.map((p) => [p, 'none'])].sort());
  const v = verifyCache(s, `file://${cache}`, k.public);
  assert.equal(v.status, 0, v.stderr);
  await removePrefix(dir);
});

// every way a restore reads a NAR: many per host decompressor, or one at a time through the pure decoders
const DECODERS = [
  { name: 'host zstd', compression: 'zstd', ext: '.nar.zst', hide: undefined },
  { name: 'pure zstd', compression: 'zstd', ext: '.nar.zst', hide: 'RELONIX_NO_HOST_ZSTD' },
  { name: 'host xz', compression: 'xz', ext: '.nar.xz', hide: undefined },
  { name: 'WebAssembly xz', compression: 'xz', ext: '.nar.xz', hide: 'RELONIX_NO_HOST_XZ' },
] as const;
for (const d of DECODERS)
  test(`restore (${d.name}): a cache written by nix copy ?compression=${d.compression} is restored and registered`, async () => {
    const dir = tempDir('rstz');
    const cache = path.join(dir, 'cache');
    const s = makeStore(path.join(dir, 'p'));
    const { top, all } = buildClosure(s, 'rstz');
    const more = buildClosure(s, 'rstz-more');
    s.nix(['--generate-binary-cache-key', 'nkz-1', `${dir}/nk.secret`, `${dir}/nk.public`]);
    const pub = readFileSync(`${dir}/nk.public`, 'utf8').trim();
    s.nix(['--extra-experimental-features', 'nix-command', 'store', 'sign', '--key-file', `${dir}/nk.secret`, '--recursive', top, more.top], 'nix');
    s.nix(['--extra-experimental-features', 'nix-command', 'copy', '--to', `file://${cache}?compression=${d.compression}`, top, more.top], 'nix');
    for (const n of (await fs.readdir(cache)).filter((x) => x.endsWith('.narinfo'))) {
      const ni = parseNarInfo(await fs.readFile(path.join(cache, n), 'utf8'));
      assert.equal(ni.compression, d.compression, `Nix wrote a ${d.compression} cache`);
      assert.ok(ni.url.endsWith(d.ext), ni.url);
    }
    await removePrefix(s.prefix);
    const saved = d.hide && process.env[d.hide];
    if (d.hide) process.env[d.hide] = '1';
    try {
      // four paths through one worker: the host decompressor serves them all back to back
      const got = await restoreClosure({
        layout: makeStore(s.prefix).layout,
        caches: [`file://${cache}`],
        trustedKeys: [pub],
        system: 'x',
        roots: [top, more.top],
        nixStore: '/usr/bin/nix-store',
        jobs: 1,
      });
      assert.deepEqual(got.sort(), [...all, ...more.all].sort());
    } finally {
      if (d.hide && saved === undefined) delete process.env[d.hide];
      else if (d.hide) process.env[d.hide] = saved;
    }
    assertRestored(s.prefix, [...all, ...more.all]);
    assert.equal(spawnSync(path.join(top, 'bin', 'x'), { encoding: 'utf8' }).stdout, 'hi\n');
    await removePrefix(dir);
  });

test('restore: a cache written by nix copy is restored and registered; tampering and a wrong key register nothing', async () => {
  const dir = tempDir('rst');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const { top, all } = buildClosure(s, 'rst');
  s.nix(['--generate-binary-cache-key', 'nk-1', `${dir}/nk.secret`, `${dir}/nk.public`]);
  const pub = readFileSync(`${dir}/nk.public`, 'utf8').trim();
  s.nix(['--extra-experimental-features', 'nix-command', 'store', 'sign', '--key-file', `${dir}/nk.secret`, '--recursive', top], 'nix');
  s.nix(['--extra-experimental-features', 'nix-command', 'copy', '--to', `file://${cache}`, top], 'nix');
  await removePrefix(s.prefix);
  const attempt = (keys: string[]) =>
    restoreClosure({
      layout: makeStore(s.prefix).layout,
      caches: [`file://${cache}`],
      trustedKeys: keys,
      system: 'x',
      roots: [top],
      nixStore: '/usr/bin/nix-store',
    });
  // wrong key: refused with the integrity code, and nothing is in the store or the DB
  await assert.rejects(
    attempt([generateKey('nk-1').public]),
    (e: unknown) => e instanceof RelonixError && e.kind === 'integrity' && /signature/.test(e.message),
  );
  let f = makeStore(s.prefix);
  assert.deepEqual(storeEntries(f), []);
  // tampered NarSize in the top narinfo (its own signature no longer matches)
  const niFile = path.join(cache, `${path.basename(top).slice(0, 32)}.narinfo`);
  const orig = await fs.readFile(niFile, 'utf8');
  await fs.writeFile(
    niFile,
    orig.replace(/NarSize: (\d+)/, (_, n: string) => `NarSize: ${Number(n) + 8}`),
  );
  await assert.rejects(attempt([pub]), (e: unknown) => e instanceof RelonixError && e.kind === 'integrity');
  for (const p of all) assert.ok(!isValid(f, p), 'nothing registered after a refused restore');
  // a NarHash changed AND re-signed by the attacker's key is still refused when only the real key is trusted,
  // and a NarHash changed under a key we do trust is caught when the NAR is checked
  const attacker = parseSecretKey(generateKey('nk-1').secret);
  const ni = parseNarInfo(orig);
  ni.narHash = `sha256:${toNixBase32(Buffer.alloc(32, 1))}`;
  ni.sigs = [signNarInfo(ni, attacker)];
  await fs.writeFile(niFile, formatNarInfo(ni));
  await assert.rejects(attempt([pub]), (e: unknown) => e instanceof RelonixError && e.kind === 'integrity');
  await assert.rejects(attempt([pub, attacker.publicKey]), (e: unknown) => e instanceof RelonixError && e.kind === 'integrity' && /hash/.test(e.message));
  for (const p of all) assert.ok(!isValid(f, p), 'nothing registered after a refused restore');
  assert.ok(!existsSync(top), 'the tampered path never reaches its place in the store');
  // the real narinfo restores and registers everything, and a re-run is a no-op
  await fs.writeFile(niFile, orig);
  const got = await attempt([pub]);
  assert.deepEqual(got.sort(), all);
  f = assertRestored(s.prefix, all);
  assert.equal(f.nix(['-q', '--hash', top]), parseNarInfo(orig).narHash);
  assert.deepEqual((await attempt([pub])).sort(), all);
  await removePrefix(dir);
});

test('restoreFromCache reads relonix.json and restores the recorded Nix closure into a wiped prefix', async () => {
  const dir = tempDir('rfc');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const { top, all } = buildClosure(s, 'nixlike');
  const k = await writeKey(`${dir}/k.secret`, 'rfc-1');
  const res = await publishStore(s, `file://${cache}`, `${dir}/k.secret`, [top], { system: 'x86_64-linux', nix: top });
  assert.equal(res.uploaded, 2);
  const m = JSON.parse(await fs.readFile(path.join(cache, 'relonix.json'), 'utf8'));
  assert.equal(m.storeDir, s.layout.storeDir);
  assert.equal(m.nix['x86_64-linux'].path, top);
  // another store dir is refused with a clear message
  const other = makeStore(path.join(dir, 'q'));
  await assert.rejects(
    restoreFromCache({ layout: other.layout, caches: [`file://${cache}`], trustedKeys: [k.public], system: 'x86_64-linux', nixStore: '/usr/bin/nix-store' }),
    /names a Nix|store/,
  );
  await removePrefix(s.prefix);
  const events: string[] = [];
  const beside: { nix: string; cacert?: string; inPlace: boolean[] }[] = [];
  const r = await restoreFromCache({
    layout: makeStore(s.prefix).layout,
    caches: [`file://${cache}`],
    trustedKeys: [k.public],
    system: 'x86_64-linux',
    nixStore: '/usr/bin/nix-store',
    onProgress: (e) => events.push(e.message),
    // told the manifest's Nix once every path of the closure has its name
    besideRegistration: async (nix, cacert) => void beside.push({ nix, cacert, inPlace: all.map((p) => existsSync(p)) }),
  });
  assert.deepEqual(beside, [{ nix: top, cacert: undefined, inPlace: all.map(() => true) }]);
  assert.equal(r.nix, top);
  assert.deepEqual(r.paths.sort(), all);
  const f = makeStore(s.prefix);
  for (const p of all) assert.ok(isValid(f, p));
  assert.equal(spawnSync(path.join(top, 'bin', 'x'), { encoding: 'utf8' }).stdout, 'hi\n');
  assert.ok(events.some((e) => /restored/.test(e)));
  // publish refuses a cache for another store dir
  await assert.rejects(publishStore(other, `file://${cache}`, `${dir}/k.secret`, []), /serves the store/);
  await removePrefix(dir);
});

test('restore: a corrupt NAR in the middle of a decompressor run is named, and nothing of the closure is registered', async () => {
  const dir = tempDir('rstbad');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const a = buildClosure(s, 'bad-a');
  const b = buildClosure(s, 'bad-b');
  const k = await writeKey(`${dir}/k.secret`, 'bad-1');
  await publishStore(s, `file://${cache}`, `${dir}/k.secret`, [a.top, b.top], undefined, 'zstd');
  // the second-largest NAR: a run starts with the largest, so this one sits mid-stream
  const infos = await Promise.all(
    (await fs.readdir(cache)).filter((x) => x.endsWith('.narinfo')).map(async (n) => parseNarInfo(await fs.readFile(path.join(cache, n), 'utf8'))),
  );
  const victim = infos.sort((x, y) => y.fileSize! - x.fileSize!)[1]!;
  const file = path.join(cache, victim.url);
  const bytes = await fs.readFile(file);
  bytes[bytes.length >> 1]! ^= 0xff;
  await fs.writeFile(file, bytes);
  await removePrefix(s.prefix);
  const l = makeStore(s.prefix).layout;
  await assert.rejects(
    restoreClosure({
      layout: l,
      caches: [`file://${cache}`],
      trustedKeys: [k.public],
      system: 'x',
      roots: [a.top, b.top],
      nixStore: '/usr/bin/nix-store',
      jobs: 1,
    }),
    (e: unknown) => e instanceof RelonixError && e.kind === 'integrity' && e.message.includes(path.basename(victim.url)),
  );
  const f = makeStore(s.prefix);
  for (const p of [...a.all, ...b.all]) assert.ok(!isValid(f, p), `${p} is not registered after a refused restore`);
  assert.ok(!existsSync(victim.storePath), 'the corrupt path never takes its name in the store');
  assert.deepEqual(
    readdirSync(l.storeDir).filter((n) => n.startsWith('.relonix-')),
    [],
    'no temporary is left',
  );
  await removePrefix(dir);
});

test('restore from a directory cache: the host decompressor reads the NAR files itself; one that fails on them, or puts out other bytes, is passed over for the pipe', async () => {
  const dir = tempDir('rstfiles');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const a = buildClosure(s, 'files-a');
  const b = buildClosure(s, 'files-b');
  const all = [...a.all, ...b.all].sort();
  const k = await writeKey(`${dir}/k.secret`, 'files-1');
  await publishStore(s, `file://${cache}`, `${dir}/k.secret`, [a.top, b.top], undefined, 'zstd');
  const narFiles = readdirSync(path.join(cache, 'nar')).map((n) => path.join(cache, 'nar', n));
  const real = requireTool('zstd');
  // a zstd first on PATH that logs how it is run, then does what `body` says
  const wrapper = async (name: string, body: string) => {
    const d = path.join(dir, name);
    await fs.mkdir(d);
    await fs.writeFile(path.join(d, 'zstd'), `#!/bin/sh\necho "$*" >> ${d}/log\n${body}\n`, { mode: 0o755 });
    return { path: `${d}:${process.env.PATH}`, runs: async () => (await fs.readFile(path.join(d, 'log'), 'utf8')).trim().split('\n') };
  };
  const withPath = async <T>(p: string, f: () => Promise<T>): Promise<T> => {
    const saved = process.env.PATH;
    process.env.PATH = p;
    try {
      return await f();
    } finally {
      process.env.PATH = saved;
    }
  };
  const restoreWith = async (p: string) => {
    await removePrefix(s.prefix);
    const got = await withPath(p, () =>
      restoreClosure({
        layout: makeStore(s.prefix).layout,
        caches: [`file://${cache}`],
        trustedKeys: [k.public],
        system: 'x',
        roots: [a.top, b.top],
        nixStore: '/usr/bin/nix-store',
        jobs: 2,
      }),
    );
    assert.deepEqual(got.sort(), all);
    assertRestored(s.prefix, all);
    assert.equal(spawnSync(path.join(a.top, 'bin', 'x'), { encoding: 'utf8' }).stdout, 'hi\n');
  };
  const named = (runs: string[]) => runs.filter((r) => r.includes(' -- ')).flatMap((r) => r.split(' -- ')[1]!.split(' '));

  // a working zstd: two runs (two lanes), each named its share of the files, together every file once; nothing through a pipe
  const works = await wrapper('works', `exec ${real} "$@"`);
  await restoreWith(works.path);
  const runs = await works.runs();
  assert.equal(runs.length, 2, runs.join('\n'));
  for (const r of runs) assert.match(r, /^-d -c -q -- \S/);
  assert.deepEqual(named(runs).sort(), narFiles.sort());

  // one that refuses files (a wrapper that only filters): each lane runs it once on its files, then feeds it through the pipe
  const refuses = await wrapper('refuses', `case " $* " in *" -- "*) echo "zstd: cannot open files here" >&2; exit 1;; esac\nexec ${real} "$@"`);
  await restoreWith(refuses.path);
  const refused = await refuses.runs();
  assert.equal(refused.filter((r) => r.includes(' -- ')).length, 2, refused.join('\n'));
  assert.ok(
    refused.some((r) => r === '-d -c -q'),
    refused.join('\n'),
  );

  // one whose output from files stops short: the rest go through the pipe, and every path still checks out
  const short = await wrapper('short', `case " $* " in *" -- "*) ${real} "$@" | head -c 3000; exit 0;; esac\nexec ${real} "$@"`);
  await restoreWith(short.path);
  assert.ok((await short.runs()).some((r) => r === '-d -c -q'));

  // more NARs than one run takes: a run per batch, in order
  await removePrefix(s.prefix);
  const l = makeStore(s.prefix).layout;
  await fs.mkdir(l.storeDir, { recursive: true });
  const infos = await closureNarInfos([openTarget(`file://${cache}`)], [a.top, b.top], [parsePublicKey(k.public)], l.storeDir);
  const queue = [...infos.values()];
  const done: string[] = [];
  const batched = await wrapper('batched', `exec ${real} "$@"`);
  assert.equal(await withPath(batched.path, () => restoreFiles(queue, path.join(dir, 'batched', 'zstd'), (it) => done.push(it.ni.storePath), 3)), true);
  assert.deepEqual(queue, []);
  assert.deepEqual(done.sort(), all);
  const batches = await batched.runs();
  assert.equal(batches.length, Math.ceil(all.length / 3), batches.join('\n'));
  for (const x of all) assert.ok(existsSync(x));
  await removePrefix(dir);
});

test('restore over HTTP: a decompressor run downloads several NARs ahead of the one it unpacks, one when they are bigger than its bound', async () => {
  const dir = tempDir('rstahead');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const closures = ['ahead-a', 'ahead-b', 'ahead-c'].map((n) => buildClosure(s, n));
  const roots = closures.map((c) => c.top);
  const all = closures.flatMap((c) => c.all).sort();
  const k = await writeKey(`${dir}/k.secret`, 'ahead-1');
  await publishStore(s, `file://${cache}`, `${dir}/k.secret`, roots, undefined, 'zstd');
  // an origin a round trip away: each NAR's first byte comes 150 ms after it is asked for
  let inFlight = 0;
  let most = 0;
  const server = await startServer({
    dir: cache,
    handler: async (req, res) => {
      if (!req.url?.startsWith('/nar/')) return false;
      most = Math.max(most, ++inFlight);
      res.once('close', () => inFlight--);
      await new Promise((r) => setTimeout(r, 150));
      return false;
    },
  });
  try {
    await removePrefix(s.prefix);
    const l = makeStore(s.prefix).layout;
    const got = await restoreClosure({ layout: l, caches: [server.url], trustedKeys: [k.public], system: 'x', roots, nixStore: '/usr/bin/nix-store', jobs: 1 });
    assert.deepEqual(got.sort(), all);
    assertRestored(s.prefix, all);
    // one run, and every NAR of the closure (fewer than it takes ahead) asked for at once
    assert.ok(all.length <= 9, `${all.length} paths`);
    assert.equal(most, all.length);

    // bigger than the bound: the one it unpacks and one more, as a restore always downloaded
    await removePrefix(s.prefix);
    await fs.mkdir(l.storeDir, { recursive: true });
    const infos = await closureNarInfos([openTarget(server.url)], roots, [parsePublicKey(k.public)], l.storeDir);
    const queue = [...infos.values()];
    const done: string[] = [];
    most = 0;
    await restoreRun(l, queue, 'zstd', (it) => done.push(it.ni.storePath), { count: 8, bytes: 1 });
    assert.deepEqual(done.sort(), all);
    assert.equal(most, 2);
    for (const x of all) assert.ok(existsSync(x));
  } finally {
    await server.close();
  }
  await removePrefix(dir);
});

test('restore over HTTP: the narinfos of the closure relonix.json lists are asked for at once; without the list, or with a wrong one, the walk of references finds the closure as before', async () => {
  const dir = tempDir('rstwave');
  const cache = path.join(dir, 'cache');
  const s = makeStore(path.join(dir, 'p'));
  const { top, all } = buildClosure(s, 'wave');
  const k = await writeKey(`${dir}/k.secret`, 'wave-1');
  await publishStore(s, `file://${cache}`, `${dir}/k.secret`, [top], { system: 'x86_64-linux', nix: top });
  const manifestFile = path.join(cache, 'relonix.json');
  const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8'));
  // publish lists the closure of the Nix it records
  assert.deepEqual(manifest.nix['x86_64-linux'].closure, all.map((p) => path.basename(p)).sort());
  // an origin a round trip away: each narinfo comes 200 ms after it is asked for
  let asked: number[] = [];
  let askedFor: string[] = [];
  const meta = new Map<string, number>();
  const server = await startServer({
    dir: cache,
    handler: async (req) => {
      if (req.url === '/nix-cache-info' || req.url === '/relonix.json') meta.set(req.url, Date.now());
      else if (req.url?.endsWith('.narinfo')) {
        asked.push(Date.now());
        askedFor.push(req.url);
      } else return false;
      await new Promise((r) => setTimeout(r, 200));
      return false;
    },
  });
  const restore = async (narinfos = all.length) => {
    await removePrefix(s.prefix);
    asked = [];
    askedFor = [];
    const r = await restoreFromCache({
      layout: makeStore(s.prefix).layout,
      caches: [server.url],
      trustedKeys: [k.public],
      system: 'x86_64-linux',
      nixStore: '/usr/bin/nix-store',
    });
    assert.deepEqual(r.paths.sort(), all);
    assertRestored(s.prefix, all);
    if (narinfos) assert.equal(asked.length, narinfos, 'each narinfo asked for once');
    return Math.max(...asked) - Math.min(...asked);
  };
  try {
    // listed: the root's narinfo and its reference's together, in one round trip
    assert.ok((await restore()) < 150, `asked over ${asked.map((t) => t - asked[0]!).join(', ')} ms`);
    // and before them, nix-cache-info and relonix.json in one round trip too
    const [info, manifestAt] = [meta.get('/nix-cache-info')!, meta.get('/relonix.json')!];
    assert.ok(Math.abs(info - manifestAt) < 150, `nix-cache-info asked for ${info - manifestAt} ms after relonix.json`);
    // an older manifest without the list: the reference waits for the root's narinfo, as it always did
    delete manifest.nix['x86_64-linux'].closure;
    await fs.writeFile(manifestFile, JSON.stringify(manifest));
    assert.ok((await restore()) >= 200, `asked over ${asked.map((t) => t - asked[0]!).join(', ')} ms`);
    // a wrong list (the manifest is not signed): a path of no closure is asked for in vain, what is
    // no store path not at all, and the closure restored is the one the narinfos name
    manifest.nix['x86_64-linux'].closure = ['../../etc/passwd', `${'0'.repeat(32)}-nothing`, 7];
    await fs.writeFile(manifestFile, JSON.stringify(manifest));
    await restore(all.length + 1);
    // a long wrong list: the walk's own lookup of the reference goes ahead of the list's, and what
    // of the list still waits when the walk is over is never asked for
    manifest.nix['x86_64-linux'].closure = Array.from({ length: 300 }, (_, i) => `${i.toString(32).padStart(32, '0')}-nothing`);
    await fs.writeFile(manifestFile, JSON.stringify(manifest));
    await restore(0);
    const leaf = all.find((p) => p !== top)!;
    const at = askedFor.indexOf(`/${path.basename(leaf).slice(0, 32)}.narinfo`);
    assert.ok(at >= 0 && asked[at]! - asked[0]! < 700, `the reference was asked for ${asked[at]! - asked[0]!} ms after the root`);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(asked.length < 150, `${asked.length} narinfos asked for`);
  } finally {
    await server.close();
  }
  await removePrefix(dir);
});
