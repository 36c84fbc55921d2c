// The generated stand-in for the official tarball, checked against Debian's own nix (NAR hashes),
// readelf (interpreters, RUNPATHs) and the dynamic loader (the patched binaries still load).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Fixture } from '../../src/demo/fixture.ts';
import { GENERATOR_VERSION } from '../../src/demo/fixture.ts';
import { currentManifest, ensureFixture } from '../../src/demo/mirror.ts';
import { parseNarHashField, parseRegInfo, type RegInfo } from '../../src/store/reginfo.ts';
import { parseStorePath } from '../../src/store/storepath.ts';
import { listTree, removeTree } from '../../src/util/fs.ts';

let fx: Fixture;
let tmp: string;
let top: string;
let records: RegInfo[];

const sh = (cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
const local = (storePath: string) => path.join(top, 'store', path.basename(storePath));

before(async () => {
  fx = await ensureFixture();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-fixture-'));
  // host tar is the oracle here; the project's own unpacker is tested elsewhere
  sh('tar', ['-xJf', fx.tarball, '-C', tmp]);
  top = path.join(tmp, `nix-${fx.version}-${fx.system}`);
  records = parseRegInfo(await fs.readFile(path.join(top, '.reginfo'), 'utf8'));
});

after(async () => {
  if (tmp) await removeTree(tmp);
});

test('fixture: official layout with install, .reginfo and one dir per store path', async () => {
  assert.deepEqual(await fs.readdir(tmp), [`nix-2.8.0-x86_64-linux`]);
  assert.deepEqual((await fs.readdir(top)).sort(), ['.reginfo', 'install', 'store']);
  const install = await fs.readFile(path.join(top, 'install'), 'utf8');
  assert.match(install, new RegExp(`^nix="${fx.nixPath}"$`, 'm'));
  assert.match(install, new RegExp(`^cacert="${fx.cacertPath.replace(/\+/g, '\\+')}"$`, 'm'));
  assert.match(path.basename(fx.nixPath), /^[0-9a-df-np-sv-z]{32}-nix-2\.8\.0$/);
  assert.match(path.basename(fx.cacertPath), /-nss-cacert-/);
  const dirs = (await fs.readdir(path.join(top, 'store'))).sort();
  assert.deepEqual(dirs, records.map((r) => path.basename(r.path)).sort());
  assert.deepEqual([...fx.storePaths].sort(), records.map((r) => r.path).sort());
  for (const r of records) {
    parseStorePath(r.path, '/nix/store');
    const st = await fs.lstat(local(r.path));
    assert.equal(st.mode & 0o777, 0o555, `${r.path} is read-only`);
    assert.equal(r.deriver, '');
  }
  // the published checksum file holds the tarball's sha256, as releases.nixos.org does
  const published = (await fs.readFile(`${fx.tarball}.sha256`, 'utf8')).trim();
  const actual = createHash('sha256').update(readFileSync(fx.tarball)).digest('hex');
  assert.equal(published, actual);
  assert.equal(fx.sha256, actual);
});

test('fixture: nix store path holds the tools, libs, profile script, .pc and an absolute symlink', async () => {
  const nix = local(fx.nixPath);
  assert.ok((await fs.stat(path.join(nix, 'bin/nix'))).mode & 0o100);
  for (const t of ['nix-build', 'nix-store', 'nix-env', 'nix-instantiate', 'nix-shell', 'nix-hash', 'nix-channel']) {
    assert.equal(await fs.readlink(path.join(nix, 'bin', t)), 'nix');
  }
  for (const l of ['libnixstore.so', 'libnixutil.so', 'libnixexpr.so', 'libnixmain.so', 'libnixcmd.so', 'libnixfetchers.so']) {
    assert.ok((await fs.stat(path.join(nix, 'lib', l))).isFile(), l);
  }
  assert.equal(await fs.readlink(path.join(nix, 'share/nix-bin')), `${fx.nixPath}/bin`);
  const profile = await fs.readFile(path.join(nix, 'etc/profile.d/nix.sh'), 'utf8');
  assert.ok(profile.includes(fx.nixPath) && profile.includes(fx.cacertPath));
  const pc = await fs.readFile(path.join(nix, 'lib/pkgconfig/nix-store.pc'), 'utf8');
  assert.match(pc, new RegExp(`^prefix=${fx.nixPath}$`, 'm'));
  const bundle = await fs.readFile(path.join(local(fx.cacertPath), 'etc/ssl/certs/ca-bundle.crt'), 'utf8');
  assert.match(bundle, /BEGIN CERTIFICATE/);
});

test('fixture: every .reginfo NAR hash and size match Debian nix (nix-hash, nix-store --dump)', () => {
  assert.ok(records.length > 10);
  for (const r of records) {
    const oracle = sh('nix-hash', ['--type', 'sha256', '--base32', local(r.path)]).trim();
    assert.equal(r.narHash, `sha256:${oracle}`, r.path);
    assert.equal(parseNarHashField(r.narHash).length, 32);
    const nar = execFileSync('nix-store', ['--dump', local(r.path)], { maxBuffer: 256 << 20 });
    assert.equal(r.narSize, nar.length, r.path);
  }
});

test('fixture: references are closed and found by scanning', async () => {
  const all = new Set(records.map((r) => r.path));
  const byPath = new Map(records.map((r) => [r.path, r]));
  for (const r of records) for (const ref of r.references) assert.ok(all.has(ref), `${r.path} -> ${ref} is in the closure`);
  const nix = byPath.get(fx.nixPath)!;
  assert.ok(nix.references.includes(fx.nixPath), 'nix refers to itself (symlink, .pc, profile)');
  assert.ok(nix.references.includes(fx.cacertPath), 'nix.sh names cacert');
  const glibc = records.find((r) => /-libc6-/.test(r.path))!;
  assert.ok(nix.references.includes(glibc.path));
  assert.deepEqual(byPath.get(fx.cacertPath)!.references, []);
  // a reference must really occur in the referrer's files (no invented edges)
  for (const r of records) {
    const blobs = [];
    for (const f of [local(r.path), ...(await listTree(local(r.path)))]) {
      const st = await fs.lstat(f);
      if (st.isSymbolicLink()) blobs.push(await fs.readlink(f));
      else if (st.isFile()) blobs.push((await fs.readFile(f)).toString('latin1'));
    }
    const text = blobs.join('\n');
    for (const ref of r.references) assert.ok(text.includes(path.basename(ref).slice(0, 32)), `${r.path} mentions ${ref}`);
    for (const other of all) {
      if (!r.references.includes(other)) assert.ok(!text.includes(path.basename(other).slice(0, 32)), `${r.path} mentions unlisted ${other}`);
    }
  }
});

test('fixture: readelf shows only /nix/store interpreters and RUNPATHs that cover every DT_NEEDED', async () => {
  const glibc = records.find((r) => /-libc6-/.test(r.path))!;
  const ldso = `${glibc.path}/lib/ld-linux-x86-64.so.2`;
  let elves = 0;
  let withInterp = 0;
  for (const r of records) {
    for (const f of await listTree(local(r.path))) {
      const st = await fs.lstat(f);
      if (!st.isFile()) continue;
      const head = Buffer.alloc(4);
      const fh = await fs.open(f, 'r');
      await fh.read(head, 0, 4, 0);
      await fh.close();
      if (head.toString('latin1') !== '\x7fELF') continue;
      elves++;
      const prog = sh('readelf', ['-lW', f]);
      const interp = /Requesting program interpreter: ([^\]]+)\]/.exec(prog)?.[1];
      if (interp) {
        withInterp++;
        assert.equal(interp, ldso, f);
      }
      const dyn = sh('readelf', ['-dW', f]);
      assert.ok(!/\(RPATH\)/.test(dyn), `${f} has no DT_RPATH`);
      const runpath = /\(RUNPATH\)\s+Library runpath: \[([^\]]*)\]/.exec(dyn)?.[1];
      const dirs = runpath ? runpath.split(':') : [];
      for (const d of dirs) {
        assert.ok(d.startsWith('/nix/store/') && d.endsWith('/lib'), `${f}: ${d}`);
        assert.ok(
          records.some((x) => `${x.path}/lib` === d),
          `${f}: ${d} is a fixture path`,
        );
      }
      for (const m of dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)) {
        const found = dirs.some((d) => existsSync(path.join(local(d.slice(0, -4)), 'lib', m[1]!)));
        assert.ok(found, `${f}: ${m[1]} resolves through RUNPATH`);
      }
    }
  }
  assert.ok(elves > 40, `found ${elves} ELF files`);
  assert.ok(withInterp >= 2, 'nix and libc carry the store interpreter');
  const dyn = sh('readelf', ['-lW', path.join(local(glibc.path), 'lib/ld-linux-x86-64.so.2')]);
  assert.ok(!/Requesting program interpreter/.test(dyn), 'the dynamic linker is left alone');
});

test('fixture: the patched nix still loads and runs through the fixture loader', () => {
  const glibc = records.find((r) => /-libc6-/.test(r.path))!;
  const libPath = records.map((r) => path.join(local(r.path), 'lib')).join(':');
  const out = sh(path.join(local(glibc.path), 'lib/ld-linux-x86-64.so.2'), ['--library-path', libPath, path.join(local(fx.nixPath), 'bin/nix'), '--version']);
  assert.match(out, /nix \(Nix\) 2\.8\.0/);
});

test('fixture: a finished fixture is reused, not regenerated', async () => {
  const files = [fx.tarball, `${fx.tarball}.sha256`, path.join(fx.dir, 'manifest.json')];
  const identity = () =>
    Promise.all(
      files.map(async (f) => {
        const st = await fs.stat(f);
        return { f, ino: st.ino, mtimeMs: st.mtimeMs, size: st.size };
      }),
    );
  const before = await identity();
  const said: string[] = [];
  const again = await ensureFixture({ log: (s) => said.push(s) });
  assert.equal(again.sha256, fx.sha256);
  assert.deepEqual(said, [], 'no generation step ran');
  assert.deepEqual(await identity(), before, 'the tarball, its checksum and the manifest were not rewritten');
  assert.deepEqual(
    (await fs.readdir(fx.dir)).filter((n) => n.startsWith('.build-')),
    [],
    'no generation was begun',
  );
});

test('fixture: a torn or stale generation is not taken for a finished one', async () => {
  const dir = path.join(tmp, 'torn');
  await fs.mkdir(dir);
  assert.equal(await currentManifest(dir), undefined, 'nothing generated');
  const good = JSON.parse(await fs.readFile(path.join(fx.dir, 'manifest.json'), 'utf8'));
  const tarball = path.join(dir, path.basename(fx.tarball));
  // a tarball cut short by a kill during packing
  await fs.writeFile(tarball, (await fs.readFile(fx.tarball)).subarray(0, 1000));
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ ...good, dir, tarball }));
  assert.equal(await currentManifest(dir), undefined, 'short tarball');
  await fs.copyFile(fx.tarball, tarball);
  assert.equal((await currentManifest(dir))?.sha256, fx.sha256, 'complete copy is accepted');
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ ...good, dir, tarball, generator: GENERATOR_VERSION - 1 }));
  assert.equal(await currentManifest(dir), undefined, 'older generator');
  await fs.writeFile(path.join(dir, 'manifest.json'), '{"generator":');
  assert.equal(await currentManifest(dir), undefined, 'torn manifest');
});
