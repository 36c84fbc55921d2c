// What a bootstrap's stages read of each other's work, when it goes away or changes: a disk that
// fills during the unpack is said as such (never as a damaged tarball) and a re-run continues once
// there is room; a deleted download is fetched again; a local tarball replaced at the same path is
// another tarball.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Fixture } from '../../src/demo/fixture.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { EXIT, events, relonix, strikeRelonix } from '../helpers/cli.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { prefixList, removePrefix, tempDir } from '../helpers/paths.ts';
import { requireRoot } from '../helpers/tools.ts';

const mirror = mirrorFor();
const prefixes = prefixList();
let work: string;
/** the fixture's tar, decompressed once for the tarballs made from it */
let plainTar: string;

let fx: Fixture;

before(async () => {
  requireRoot('it mounts a tmpfs that fills up');
  fx = await ensureFixture();
  work = tempDir('inputs');
  plainTar = path.join(work, 'fixture.tar');
  execFileSync('sh', ['-c', `xz -dc "${fx.tarball}" > "${plainTar}"`]);
});
after(async () => {
  await prefixes.removeAll();
  await removePrefix(work);
});

/** A .tar.xz of the fixture's tar with `extra` appended (made in `dir`), with its .sha256 beside it. */
async function tarballOf(name: string, extra?: { name: string; bytes: number }): Promise<string> {
  const tar = path.join(work, `${name}.tar`);
  await fs.copyFile(plainTar, tar);
  if (extra) {
    const top = path.join(work, `${name}-extra`);
    const inTop = path.join(top, path.basename(fx.tarball, '.tar.xz'));
    await fs.mkdir(inTop, { recursive: true });
    execFileSync('truncate', ['-s', String(extra.bytes), path.join(inTop, extra.name)]);
    execFileSync('tar', ['-rf', tar, '-C', top, path.join(path.basename(inTop), extra.name)]);
  }
  // another compression level than the fixture's: other bytes, the same closure
  execFileSync('xz', ['-1', '-T0', '-f', tar]);
  const file = `${tar}.xz`;
  const sum = createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');
  await fs.writeFile(`${file}.sha256`, `${sum}  ${path.basename(file)}\n`);
  return file;
}

const ran = (stdout: string) =>
  events(stdout)
    .filter((e) => e.event === 'stage' && e.status === 'done')
    .map((e) => e.stage);

test('a disk that fills during the unpack is a preflight error saying what is free and needed, and a re-run completes once there is room', async () => {
  // 200 MiB of zeros compress to almost nothing: the space checks, made from the tarball's size,
  // pass, and the unpack runs out of room part-way
  const tarball = await tarballOf('padded', { name: 'padding', bytes: 200 * 1024 * 1024 });
  const mnt = path.dirname(await prefixes.add(undefined, 'full-unpack'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=240m', 'tmpfs', mnt]);
  try {
    const prefix = path.join(mnt, 'nix');
    const r = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', tarball]);
    assert.equal(r.code, EXIT.preflight, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /stage unpack/);
    assert.match(r.stderr, /no space left on \S+: [\d.]+ MiB free, [\d.]+ MiB needed/);
    assert.doesNotMatch(r.stderr, /damaged|download it again|delete it/i);
    // the fix it prints: room, and the same command
    execFileSync('mount', ['-o', 'remount,size=700m', mnt]);
    const again = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', tarball, '--json']);
    assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`);
    assert.deepEqual(ran(again.stdout), ['unpack', 'relocate', 'configure', 'register', 'verify']);
  } finally {
    execFileSync('umount', [mnt]);
  }
});

test('a download deleted after the fetch stage is fetched again, not reported as damage', async () => {
  const prefix = await prefixes.add(undefined, 'lost-download');
  const args = ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--json'];
  // killed as the unpack starts: the fetch stage is done and its download is all there is of it
  const r = await strikeRelonix(args, (ev) => (ev.event === 'stage' && ev.stage === 'unpack' && ev.status === 'start' ? 0 : undefined));
  assert.equal(r.struck, true);
  const downloads = path.join(prefix, 'var/relonix/downloads');
  const files = (await fs.readdir(downloads)).filter((f) => f.endsWith('.tar.xz'));
  assert.equal(files.length, 1, `one download: ${files.join(', ')}`);
  await fs.rm(path.join(downloads, files[0]!));
  const before = mirror.log.length;
  const again = await relonix(undefined, args);
  assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`);
  assert.deepEqual(ran(again.stdout), ['fetch', 'unpack', 'relocate', 'configure', 'register', 'verify']);
  assert.ok(
    mirror.log.slice(before).some((q) => q.method === 'GET' && q.path.endsWith('.tar.xz')),
    'the tarball was downloaded again',
  );
});

test('a local tarball replaced at the same path is another tarball: the next bootstrap fetches and unpacks it', async () => {
  const prefix = await prefixes.add(undefined, 'replaced');
  const local = path.join(work, 'nix-2.8.0-x86_64-linux.tar.xz');
  await fs.copyFile(fx.tarball, local);
  await fs.writeFile(`${local}.sha256`, `${fx.sha256}\n`);
  const first = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', local]);
  assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
  const same = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', local]);
  assert.match(same.stdout, /nothing to do/);

  // the same closure compressed otherwise, put where the first one was
  const other = await tarballOf('recompressed');
  await fs.rename(other, local);
  await fs.rename(`${other}.sha256`, `${local}.sha256`);
  const again = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', local, '--json']);
  assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`);
  assert.deepEqual(ran(again.stdout), ['preflight', 'fetch', 'unpack', 'relocate', 'configure', 'register', 'verify']);
  const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
  const want = (await fs.readFile(`${local}.sha256`, 'utf8')).split(/\s/)[0];
  assert.equal(state.stages.fetch.detail.sha256, want);
});

test('a download resumed from what a killed run left is unpacked as it arrives; a damaged part is fetched and unpacked again, and the store verifies', async () => {
  const tarball = await fs.readFile(fx.tarball);
  const etag = (await fetch(mirror.url, { method: 'HEAD' })).headers.get('etag');
  assert.ok(etag, 'the mirror sends an ETag, which a resumed download asks If-Range with');
  for (const damaged of [false, true]) {
    const prefix = await prefixes.add(undefined, damaged ? 'damaged-part' : 'resumed-part');
    const args = ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--json'];
    // a prefix whose fetch was killed: its part is then replaced by one of a known length
    const r = await strikeRelonix(args, (ev) => (ev.event === 'stage' && ev.stage === 'fetch' && ev.status === 'start' ? 0 : undefined));
    assert.equal(r.struck, true);
    const downloads = path.join(prefix, 'var/relonix/downloads');
    await fs.rm(downloads, { recursive: true, force: true });
    await fs.mkdir(downloads, { recursive: true });
    const part = path.join(downloads, `${path.basename(fx.tarball)}.part`);
    const left = Buffer.from(tarball.subarray(0, 1 << 20));
    if (damaged) left[4096]! ^= 0xff;
    await fs.writeFile(part, left);
    await fs.writeFile(`${part}.json`, JSON.stringify({ url: mirror.url, etag, total: tarball.length }));
    const before = mirror.log.length;
    const again = await relonix(undefined, args);
    assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`);
    const gets = mirror.log.slice(before).filter((q) => q.method === 'GET' && q.path.endsWith('.tar.xz'));
    assert.equal(gets[0]?.range, `bytes=${1 << 20}-`, 'the download resumed after what the part held');
    // a damaged part fails the checksum: the download starts over, and the unpack fed by it is
    // dropped for one from the verified file
    assert.equal(gets.length, damaged ? 2 : 1, JSON.stringify(gets));
    const unpack = events(again.stdout).find((e) => e.event === 'stage' && e.stage === 'unpack' && e.status === 'done');
    assert.equal(/unpacked as it downloaded/.test(String(unpack?.summary)), !damaged, String(unpack?.summary));
    const verify = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
    assert.equal(verify.code, 0, verify.stderr);
    await removePrefix(prefix);
  }
});

test('a store path changed between the register and verify stages fails verify, which hashes what was registered', async () => {
  const prefix = await prefixes.add(undefined, 'tampered');
  const args = ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--json'];
  const r = await strikeRelonix(args, (ev) => (ev.event === 'stage' && ev.stage === 'verify' && ev.status === 'start' ? 0 : undefined));
  assert.equal(r.struck, true);
  const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
  assert.ok(state.registered?.includes(state.nix), 'the register stage recorded the paths it loaded');
  // a file nothing runs: only the contents check can notice it
  const pc = path.join(state.nix, 'lib/pkgconfig/nix-main.pc');
  await fs.chmod(path.dirname(pc), 0o755);
  await fs.chmod(pc, 0o644);
  await fs.appendFile(pc, '# changed\n');
  const again = await relonix(undefined, args);
  assert.equal(again.code, EXIT.failure, `${again.stdout}\n${again.stderr}`);
  assert.match(again.stderr, /stage verify/);
  assert.match(again.stderr, new RegExp(`path '${state.nix}' was modified`));
  await removePrefix(prefix);
});
