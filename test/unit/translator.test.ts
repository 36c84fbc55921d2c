// The translator's pure parts: the default store dir, the port and URL a prefix gets, the upstreams
// the options name, what a prefix without a translator is told, the nix.conf lines, and what the
// translator tells a command through its lease (temporary files only), and the NAR URL a narinfo is served with.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateKey, parseSecretKey } from '../../src/cache/keys.ts';
import { defaultStoreDir, layout } from '../../src/prefix/layout.ts';
import { nixConfBlock } from '../../src/prefix/nix-conf.ts';
import { NIXOS_CACHE, NIXOS_KEY } from '../../src/translate/upstream.ts';
import { clientInodes } from '../../src/translator/askers.ts';
import { DEFAULT_UPSTREAMS, keyId, nthPort, preferredPort, readTranslatorConfig, substituterUrl, translatorFiles } from '../../src/translator/config.ts';
import { FileCache } from '../../src/translator/keep.ts';
import { Notes, readRecord, untranslatableReason } from '../../src/translator/notes.ts';
import { noTranslatorReason, upstreamsOf } from '../../src/translator/setup.ts';
import { isKind, RelonixError } from '../../src/util/errors.ts';

const KEY = 'upstream-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';

test('a new prefix gets <prefix>/s where that is as long as /nix/store, else <prefix>/store', () => {
  assert.equal(defaultStoreDir('/tmp/nix'), '/tmp/nix/s');
  assert.equal(defaultStoreDir('/app/nix'), '/app/nix/s');
  assert.equal(defaultStoreDir('/tmp/nix2'), '/tmp/nix2/store');
  assert.equal(defaultStoreDir('/tmp/x'), '/tmp/x/store');
  // bytes, not characters: 7 characters in 8 bytes fit, 7 characters in 9 do not
  assert.equal(defaultStoreDir('/tmp/ñ1'), '/tmp/ñ1/s');
  assert.equal(defaultStoreDir('/tmp/ññ'), '/tmp/ññ/store');
});

test('the port: one per prefix and uid, below the ephemeral range, the same every time', () => {
  const a = preferredPort('/tmp/nix', 1000);
  assert.equal(preferredPort('/tmp/nix', 1000), a);
  const ports = new Set<number>();
  for (let uid = 1000; uid < 1100; uid++) ports.add(preferredPort('/tmp/nix', uid));
  for (const p of ['/tmp/a', '/tmp/b', '/scratch/nix', '/tmp/nix/']) ports.add(preferredPort(p, 1000));
  assert.ok(ports.size >= 100, `${ports.size} distinct ports for 104 prefix-uid pairs`);
  for (const p of ports) assert.ok(p >= 12000 && p < 32000, String(p));
  assert.equal(nthPort(31999, 1), 12000, 'the next port wraps within the range');
  assert.equal(nthPort(a, 0), a);
});

test('the substituter URL names the port and the key: a new key is a new cache to Nix', () => {
  const id = keyId(KEY);
  assert.match(id, /^[0-9a-f]{16}$/);
  assert.notEqual(keyId('other-1:AAAA'), id);
  assert.equal(substituterUrl({ port: 12345, id }), `http://127.0.0.1:12345/${id}`);
});

test('upstreams: cache.nixos.org by default, none with --no-upstream, every key for every URL', () => {
  assert.deepEqual(upstreamsOf([], []), DEFAULT_UPSTREAMS);
  assert.deepEqual(DEFAULT_UPSTREAMS, [{ url: NIXOS_CACHE, keys: [NIXOS_KEY] }]);
  assert.deepEqual(upstreamsOf(false, []), []);
  assert.deepEqual(upstreamsOf([], [KEY]), [{ url: NIXOS_CACHE, keys: [KEY] }]);
  assert.deepEqual(upstreamsOf(['https://cache.nixos.org/'], []), DEFAULT_UPSTREAMS);
  assert.deepEqual(upstreamsOf(['http://a.example/', 'file:///srv/c'], [KEY]), [
    { url: 'http://a.example', keys: [KEY] },
    { url: 'file:///srv/c', keys: [KEY] },
  ]);
  const usage = (fn: () => unknown, msg: RegExp) => assert.throws(fn, (e: unknown) => e instanceof RelonixError && e.kind === 'usage' && msg.test(e.message));
  usage(() => upstreamsOf(['http://a.example'], []), /^--upstream http:\/\/a\.example needs --upstream-key, the key its narinfos are signed with$/);
  usage(() => upstreamsOf(false, [KEY]), /--upstream-key with --no-upstream/);
  usage(() => upstreamsOf(['http://a.example'], ['not a key']), /not of the form NAME:BASE64/);
  usage(() => upstreamsOf(['ftp://a.example'], [KEY]), /unsupported cache URL/);
});

test('a prefix gets no translator without an upstream, or with a store dir of another length, and is told why', () => {
  assert.equal(noTranslatorReason(layout('/tmp/nix', '/tmp/nix/s'), DEFAULT_UPSTREAMS), undefined);
  assert.match(noTranslatorReason(layout('/tmp/nix', '/tmp/nix/s'), []) ?? '', /no upstream/);
  const why = noTranslatorReason(layout('/tmp/nix', '/tmp/nix/store'), DEFAULT_UPSTREAMS) ?? '';
  assert.match(why, /the store dir \/tmp\/nix\/store is 14 bytes, not 10 as \/nix\/store/);
  assert.match(why, /--store-dir of 10 bytes avoids that/);
});

test('nix.conf names the translator after the caches, and trusts the prefix key', () => {
  const block = nixConfBlock({
    caches: ['file:///c'],
    trustedKeys: ['c-1:AAAA'],
    journal: 'wal',
    translator: { substituter: 'http://127.0.0.1:12345/abc', publicKey: 'relonix-x-1:BBBB' },
  });
  assert.match(block, /^substituters = file:\/\/\/c http:\/\/127\.0\.0\.1:12345\/abc$/m);
  assert.match(block, /^trusted-public-keys = c-1:AAAA relonix-x-1:BBBB$/m);
  assert.match(block, /^narinfo-cache-negative-ttl = 0$/m, 'a miss is never remembered');
  assert.match(nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal' }), /^substituters =$/m);
});

test('the reason a derivation has no twin, without the details of that one', () => {
  const msg = (what: string) => `/s/x.drv is ${what}, which relonix cannot translate to another store dir`;
  assert.equal(
    untranslatableReason(msg('a content-addressed derivation (__contentAddressed: its output "out" is not fixed)')),
    'a content-addressed derivation (__contentAddressed)',
  );
  assert.equal(untranslatableReason(msg('an impure derivation (__impure)')), 'an impure derivation (__impure)');
  assert.equal(untranslatableReason('the closure is incomplete: it lacks x'), 'the closure is incomplete');
});

test('what the translator says goes to every live lease and into the record, each thing once', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-notes-'));
  try {
    const f = translatorFiles(layout(path.join(dir, 'p'), path.join(dir, 'st')));
    await fs.mkdir(f.leases, { recursive: true });
    await fs.writeFile(path.join(f.leases, '111'), '');
    await fs.writeFile(path.join(f.leases, 'junk'), '');
    const notes = new Notes(f);
    await notes.refused('/st/a-x', 'no valid signature by a trusted key');
    await notes.refused('/st/a-x', 'no valid signature by a trusted key');
    await notes.unreachable('http://up', 'ECONNREFUSED');
    await notes.untranslatable('/st/b.drv', 'an impure derivation (__impure)', true);
    const told = await fs.readFile(path.join(f.leases, '111'), 'utf8');
    assert.equal(told.split('relonix: refused /st/a-x from upstream: no valid signature by a trusted key').length, 2, told);
    assert.match(told, /Nix builds it instead/);
    assert.match(told, /relonix: warning: the upstream http:\/\/up cannot be reached \(ECONNREFUSED\)/);
    assert.doesNotMatch(told, /b\.drv/, 'what was only recorded is not said');
    assert.equal(await fs.readFile(path.join(f.leases, 'junk'), 'utf8'), '', 'only leases named by a pid');
    await assert.rejects(fs.access(path.join(f.leases, '222')), 'a lease is never made anew');
    const r = await readRecord(f);
    assert.deepEqual(
      r.refused.map((x) => x.path),
      ['/st/a-x'],
    );
    assert.deepEqual(r.untranslatable, { 'an impure derivation (__impure)': ['/st/b.drv'] });
    assert.ok(r.unreachable['http://up']);
    await notes.reachable('http://up');
    assert.deepEqual((await readRecord(f)).unreachable, {});
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a translator config that is not JSON, or of another version, is one refusal with the fix; none is no translator', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-config-'));
  try {
    const l = layout(path.join(dir, 'p'), path.join(dir, 'st'));
    const f = translatorFiles(l);
    assert.equal(await readTranslatorConfig(l), undefined, 'no config: no translator');
    await fs.mkdir(f.dir, { recursive: true });
    for (const text of ['{"version": 1, "port": ', '{"version": 2, "port": 1, "upstreams": []}']) {
      await fs.writeFile(f.config, text);
      await assert.rejects(
        readTranslatorConfig(l),
        (e: unknown) => isKind(e, 'usage') && e.message === `${f.config} is not a translator config this relonix reads` && /bootstrap again/.test(e.hint ?? ''),
        text,
      );
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a served narinfo names its kept NAR by file URL, odd characters escaped; other lines and other URLs stay as kept', () => {
  const dir = path.join(os.tmpdir(), 'cache dir %20 #1 ñ');
  const c = new FileCache(dir, parseSecretKey(generateKey('t-1').secret));
  const name = `${'1'.repeat(52)}.nar`;
  const kept = `StorePath: /tmp/nix/s/${'a'.repeat(32)}-x\nURL: nar/${name}\nCompression: none\nSig: k:abc\n`;
  const served = c.served(Buffer.from(kept)).toString();
  const url = /^URL: (.*)$/m.exec(served)![1]!;
  assert.match(url, /^file:\/\/\/[^ #]*$/, 'nothing a URL parser would cut short');
  assert.equal(fileURLToPath(url), path.join(dir, 'nar', name));
  assert.equal(served.replace(/^URL: .*$/m, `URL: nar/${name}`), kept);
  // not a NAR this cache keeps (the pattern the server would serve): left alone
  const other = Buffer.from(kept.replace(`nar/${name}`, 'nar/../../etc/passwd'));
  assert.equal(c.served(other), other);
});

test("the askers' connections: the client ends of established connections to the translator's port, from the kernel's table", () => {
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    // the translator listening on 127.0.0.1:51000 (0xC738), and its end of a connection
    '   0: 0100007F:C738 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:C738 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 112 1 0000000000000000 20 4 30 10 -1',
    // the asking command's end
    '   2: 0100007F:9C40 0100007F:C738 01 00000000:00000000 00:00000000 00000000  1000        0 1234 1 0000000000000000 20 4 30 10 -1',
    // an end let go (TIME_WAIT, no inode), one to another port, one to the port on another address
    '   3: 0100007F:9C41 0100007F:C738 06 00000000:00000000 03:00000ABC 00000000     0        0 0 3 0000000000000000',
    '   4: 0100007F:9C42 0100007F:C739 01 00000000:00000000 00:00000000 00000000  1000        0 555 1 0000000000000000 20 4 30 10 -1',
    '   5: 0A00000F:9C43 0A000001:C738 01 00000000:00000000 00:00000000 00000000  1000        0 556 1 0000000000000000 20 4 30 10 -1',
    '',
  ].join('\n');
  assert.deepEqual([...clientInodes(table, 51000)], [1234]);
  assert.deepEqual([...clientInodes(table, 51001)], [555]);
  assert.deepEqual([...clientInodes('', 51000)], []);
});
