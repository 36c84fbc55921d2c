// The generated stand-ins for the official tarball (Debian 12's Nix 2.8, the same without
// libexec/nix/build-remote, Debian 13's Nix 2.26), checked against Debian's own nix (NAR hashes),
// readelf (interpreters, RUNPATHs) and the dynamic loader (the patched binaries still load, 2.26's
// with the glibc 2.41 it was built for, not this machine's). Debian 13's packages come through an
// apt configuration of their own and are kept: a second run needs no network.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, type Fixture, type FixtureName, GENERATOR_VERSION } from '../../src/demo/fixture.ts';
import { currentManifest, DEBIAN_CACHE_DIR, ensureFixture } from '../../src/demo/mirror.ts';
import { parseNarHashField, parseRegInfo, type RegInfo } from '../../src/store/reginfo.ts';
import { parseStorePath } from '../../src/store/storepath.ts';
import { listTree, removeTree } from '../../src/util/fs.ts';
import { REPO } from '../helpers/paths.ts';

const sh = (cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });

const LEGACY = ['nix-build', 'nix-channel', 'nix-collect-garbage', 'nix-env', 'nix-hash', 'nix-instantiate', 'nix-shell', 'nix-store'];

interface Unpacked {
  fx: Fixture;
  tmp: string;
  /** the tarball's one directory */
  top: string;
  records: RegInfo[];
}

async function unpack(name: FixtureName): Promise<Unpacked> {
  const fx = await ensureFixture({ name });
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-fixture-'));
  // host tar is the oracle here; the project's own unpacker is tested elsewhere
  sh('tar', ['-xJf', fx.tarball, '-C', tmp]);
  const top = path.join(tmp, `nix-${fx.version}-${fx.system}`);
  return { fx, tmp, top, records: parseRegInfo(await fs.readFile(path.join(top, '.reginfo'), 'utf8')) };
}

for (const name of Object.keys(FIXTURES) as FixtureName[]) {
  describe(`fixture ${name}`, () => {
    const u = {} as Unpacked;
    const local = (storePath: string) => path.join(u.top, 'store', path.basename(storePath));
    const glibc = () => u.records.find((r) => /-libc6-/.test(r.path))!;
    before(async () => {
      Object.assign(u, await unpack(name));
    });
    after(async () => {
      if (u.tmp) await removeTree(u.tmp);
    });

    test(`official layout with install, .reginfo and one dir per store path [${name}]`, async () => {
      const { fx, top, records } = u;
      assert.equal(fx.name, name);
      assert.ok(fx.version.startsWith(`${name.split('-')[0]}.`), `fixture ${name} is Nix ${fx.version}`);
      assert.deepEqual(await fs.readdir(u.tmp), [`nix-${fx.version}-x86_64-linux`]);
      assert.deepEqual((await fs.readdir(top)).sort(), ['.reginfo', 'install', 'store']);
      const install = await fs.readFile(path.join(top, 'install'), 'utf8');
      assert.match(install, new RegExp(`^nix="${fx.nixPath}"$`, 'm'));
      assert.match(install, new RegExp(`^cacert="${fx.cacertPath.replace(/\+/g, '\\+')}"$`, 'm'));
      assert.equal(path.basename(fx.nixPath).slice(33), `nix-${fx.version}`);
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

    test(`nix store path holds the tools, its libraries, the profile script and an absolute symlink; build-remote as the release has it [${name}]`, async () => {
      const { fx } = u;
      const nix = local(fx.nixPath);
      assert.ok((await fs.stat(path.join(nix, 'bin/nix'))).mode & 0o100);
      for (const t of LEGACY) assert.equal(await fs.readlink(path.join(nix, 'bin', t)), 'nix');
      assert.equal(await fs.readlink(path.join(nix, 'share/nix-bin')), `${fx.nixPath}/bin`);
      const profile = await fs.readFile(path.join(nix, 'etc/profile.d/nix.sh'), 'utf8');
      assert.ok(profile.includes(fx.nixPath) && profile.includes(fx.cacertPath));
      const bundle = await fs.readFile(path.join(local(fx.cacertPath), 'etc/ssl/certs/ca-bundle.crt'), 'utf8');
      assert.match(bundle, /BEGIN CERTIFICATE/);
      if (name === '2.26') {
        // one multi-call binary: the libnix* libraries are linked in
        await assert.rejects(fs.lstat(path.join(nix, 'lib')), /ENOENT/);
      } else {
        for (const l of ['libnixstore.so', 'libnixutil.so', 'libnixexpr.so', 'libnixmain.so', 'libnixcmd.so', 'libnixfetchers.so']) {
          assert.ok((await fs.stat(path.join(nix, 'lib', l))).isFile(), l);
        }
        const pc = await fs.readFile(path.join(nix, 'lib/pkgconfig/nix-store.pc'), 'utf8');
        assert.match(pc, new RegExp(`^prefix=${fx.nixPath}$`, 'm'));
      }
      const hook = path.join(nix, 'libexec/nix/build-remote');
      if (name === '2.8') assert.equal(await fs.readlink(hook), '../../bin/nix');
      else await assert.rejects(fs.lstat(path.join(nix, 'libexec')), /ENOENT/, `${name} has no libexec/`);
    });

    // the variant differs from its Nix in libexec/ alone: the oracles below check the two real Nixes
    if (name === '2.8-no-build-remote') return;

    test(`every .reginfo NAR hash and size match Debian nix (nix-hash, nix-store --dump) [${name}]`, () => {
      assert.ok(u.records.length > 10);
      for (const r of u.records) {
        const oracle = sh('nix-hash', ['--type', 'sha256', '--base32', local(r.path)]).trim();
        assert.equal(r.narHash, `sha256:${oracle}`, r.path);
        assert.equal(parseNarHashField(r.narHash).length, 32);
        const nar = execFileSync('nix-store', ['--dump', local(r.path)], { maxBuffer: 256 << 20 });
        assert.equal(r.narSize, nar.length, r.path);
      }
    });

    test(`references are closed and found by scanning [${name}]`, async () => {
      const { fx, records } = u;
      const all = new Set(records.map((r) => r.path));
      const byPath = new Map(records.map((r) => [r.path, r]));
      for (const r of records) for (const ref of r.references) assert.ok(all.has(ref), `${r.path} -> ${ref} is in the closure`);
      const nix = byPath.get(fx.nixPath)!;
      assert.ok(nix.references.includes(fx.nixPath), 'nix refers to itself (symlink, profile)');
      assert.ok(nix.references.includes(fx.cacertPath), 'nix.sh names cacert');
      assert.ok(nix.references.includes(glibc().path));
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

    test(`readelf shows only /nix/store interpreters and RUNPATHs that cover every DT_NEEDED [${name}]`, async () => {
      const ldso = `${glibc().path}/lib/ld-linux-x86-64.so.2`;
      let elves = 0;
      let withInterp = 0;
      for (const r of u.records) {
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
              u.records.some((x) => `${x.path}/lib` === d),
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
      const dyn = sh('readelf', ['-lW', path.join(local(glibc().path), 'lib/ld-linux-x86-64.so.2')]);
      assert.ok(!/Requesting program interpreter/.test(dyn), 'the dynamic linker is left alone');
    });

    test(`the patched nix still loads and runs through the fixture loader, with its own release's glibc [${name}]`, () => {
      const lib = path.join(local(glibc().path), 'lib');
      const ldso = path.join(lib, 'ld-linux-x86-64.so.2');
      const libPath = u.records.map((r) => path.join(local(r.path), 'lib')).join(':');
      const out = sh(ldso, ['--library-path', libPath, path.join(local(u.fx.nixPath), 'bin/nix'), '--version']);
      assert.equal(out, `nix (Nix) ${u.fx.version}\n`);
      // libc.so.6 is a program too: it says which glibc the closure carries
      const libc = sh(ldso, [path.join(lib, 'libc.so.6')]).split('\n')[0]!;
      const want =
        name === '2.26'
          ? /GLIBC 2\.41-/
          : new RegExp(
              `GLIBC ${sh('ldd', ['--version'])
                .match(/\d+\.\d+/)![0]
                .replace('.', '\\.')}-`,
            );
      assert.match(libc, want, name === '2.26' ? "Debian 13's glibc, not this machine's" : "this machine's glibc");
      assert.match(path.basename(glibc().path), name === '2.26' ? /-libc6-2\.41-/ : /-libc6-/);
    });
  });
}

describe('fixture generation', () => {
  let fx: Fixture;
  let tmp: string;
  before(async () => {
    fx = await ensureFixture();
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-fixture-gen-'));
  });
  after(async () => {
    if (tmp) await removeTree(tmp);
  });

  test('a finished fixture is reused, not regenerated', async () => {
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

  test('a torn or stale generation is not taken for a finished one', async () => {
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

  test("Debian 13's packages came through apt files of their own, and a second run reads them with no network", async () => {
    const trixie = await ensureFixture({ name: '2.26' });
    const cache = path.join(DEBIAN_CACHE_DIR, 'trixie');
    // the machine's apt state knows nothing of trixie; the cache has its index and the .debs
    assert.deepEqual(
      (await fs.readdir('/var/lib/apt/lists')).filter((n) => n.includes('trixie')),
      [],
    );
    assert.deepEqual(
      (await fs.readdir('/var/cache/apt/archives')).filter((n) => n.startsWith('nix-bin_2.26')),
      [],
    );
    assert.ok((await fs.readdir(path.join(cache, 'lists'))).some((n) => /_dists_trixie_.*Packages/.test(n)));
    assert.ok((await fs.readdir(path.join(cache, 'debs'))).some((n) => n.startsWith('nix-bin_2.26.')));
    // the same closure again, in a network namespace with no network: apt's index and the .debs come from the cache
    const script = `
      const { trixieNixSource } = await import(${JSON.stringify(path.join(REPO, 'src/demo/trixie-nix.ts'))});
      const said = [];
      const src = await trixieNixSource(${JSON.stringify(path.join(tmp, 'offline'))}, ${JSON.stringify(cache)}, (s) => said.push(s));
      console.log(JSON.stringify({ version: src.version, libraries: src.libraries.map((l) => [l.pkg, l.version]), said }));`;
    const out = JSON.parse(sh('unshare', ['--net', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script])) as {
      version: string;
      libraries: [string, string][];
      said: string[];
    };
    assert.equal(out.version, trixie.version);
    assert.ok(!out.said.some((s) => /refreshing/.test(s)), out.said.join('\n'));
    // every library package it found is a store path of the fixture: the same closure
    const names = trixie.storePaths.map((p) => path.basename(p).slice(33));
    for (const [pkg, version] of out.libraries) {
      assert.ok(names.includes(`${pkg}-${version.replace(/^\d+:/, '')}`.replace(/[^A-Za-z0-9+\-._?=]/g, '-')), `${pkg} ${version} is in the fixture`);
    }
    assert.equal(out.libraries.length + 2, names.length, 'the libraries, Nix and the CA bundle');
  });
});
