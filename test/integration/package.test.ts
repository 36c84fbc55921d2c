// The npm package as a new user meets it: packed from this checkout, installed offline into an empty
// project, globally, and as the single file alone; each copy bootstraps the fixture tarball as a uid
// with no passwd entry and an empty environment, and the store it makes verifies.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EXIT, NOBODY_UID, shAs } from '../helpers/cli.ts';
import { type Mirror, serveFixture } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { installGlobal, installInProject, npm, type Packed, packCheckout } from '../helpers/package.ts';
import { prefixList, REPO } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

const VERSION: string = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).version;

let work: string;
let packed: Packed;
let project: string;
let installed: string;
const prefixes = prefixList();

before(async () => {
  requireTool('npm', 'npm');
  requireTool('setpriv', 'util-linux');
  requireTool('patchelf', 'patchelf');
  requireRoot('it runs the installed copy as uid 4242 with setpriv');
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-package-'));
  await fs.chmod(work, 0o755); // the unprivileged uid runs what is installed here
  packed = packCheckout(work);
  project = await installInProject(work, packed.tarball);
  installed = path.join(project, 'node_modules', 'relonix');
});

after(async () => {
  await prefixes.removeAll();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

/** `node FILE ARGS` as the unprivileged uid with an empty environment (but for `env`, NAME=VALUE words). */
function nodeAsNobody(file: string, args: string[], env: string[] = []) {
  return shAs(NOBODY_UID, [...env, process.execPath, file, ...args].join(' '));
}

/** Bootstraps a fresh prefix with `relonix` (the launcher or the single file), then has its Nix check the store. */
async function bootstrapsAndVerifies(mirror: Mirror, relonix: string, tag: string, env: string[] = []): Promise<void> {
  const p = await prefixes.add(NOBODY_UID, tag);
  const boot = await nodeAsNobody(relonix, ['bootstrap', '--prefix', p, '--url', mirror.url], env);
  assert.equal(boot.code, EXIT.ok, `bootstrap with ${relonix} failed:\n${boot.stdout}\n${boot.stderr}`);
  assert.match(boot.stdout, /Nix is ready in/);
  const verify = await nodeAsNobody(relonix, ['run', '--prefix', p, '--', 'nix-store', '--verify', '--check-contents']);
  assert.equal(verify.code, EXIT.ok, `nix-store --verify in ${p}:\n${verify.stderr}`);
  const state = JSON.parse(await fs.readFile(path.join(p, 'var/relonix/state.json'), 'utf8'));
  assert.ok(state.nix.startsWith(`${path.join(p, 'store')}/`), `the active Nix lives in the prefix's store: ${state.nix}`);
}

test('the package holds the bundles, the launcher, README, LICENSE and patches/, and no sources, tests or benches', () => {
  // a bundle's list of sources serves a checkout's launcher only
  const allowed =
    /^(bin\/relonix\.js|dist\/relonix\.mjs|dist\/patchelf\.mjs|dist\/cli\/relonix\.mjs|dist\/cli\/chunks\/[\w-]+\.mjs|patches\/[^/]+|README\.md|LICENSE|package\.json)$/;
  assert.deepEqual(
    packed.files.filter((f) => !allowed.test(f)),
    [],
    'files outside what users run',
  );
  for (const f of ['bin/relonix.js', 'dist/relonix.mjs', 'dist/cli/relonix.mjs', 'dist/patchelf.mjs', 'README.md', 'LICENSE', 'patches/README.md'])
    assert.ok(packed.files.includes(f), `${f} is in the package`);
  assert.ok(!packed.files.some((f) => /(^|\/)(src|test|bench|fixtures|scripts)\/|\.test\.|\.ts$/.test(f)), packed.files.join(', '));
});

test("the bundled packages' licenses travel once, at the end of the single file, and the split build points there", async () => {
  const single = await fs.readFile(path.join(installed, 'dist', 'relonix.mjs'), 'utf8');
  const notice = single.slice(single.lastIndexOf('/*! relonix bundles these packages; their licenses follow.'));
  assert.match(notice, /^\/\*! relonix bundles these packages; their licenses follow\.\n\n.*commander@\d/s);
  assert.match(notice, /Permission is hereby granted/);
  const entry = await fs.readFile(path.join(installed, 'dist', 'cli', 'relonix.mjs'), 'utf8');
  assert.match(entry, /\/\*! The licenses of the packages bundled here are at the end of \.\.\/relonix\.mjs/);
  assert.doesNotMatch(entry, /their licenses follow/);
});

test('installed offline into an empty project it brings no other package, and npx relonix --version prints the version', async () => {
  const top = (await fs.readdir(path.join(project, 'node_modules'))).filter((e) => !e.startsWith('.'));
  assert.deepEqual(top, ['relonix']);
  await assert.rejects(fs.stat(path.join(installed, 'node_modules')), /ENOENT/, 'nothing nested inside the package either');
  const manifest = JSON.parse(await fs.readFile(path.join(installed, 'package.json'), 'utf8'));
  assert.equal(manifest.dependencies, undefined);
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare'])
    assert.equal(manifest.scripts?.[hook], undefined, `no ${hook} script for npm to ask about`);
  assert.equal(npm(work, project, ['relonix', '--version'], 'npx').trim(), VERSION);
});

test('npx installing the package into its own cache, as `npx relonix` from a registry does, brings nothing else and runs it', async () => {
  const elsewhere = path.join(work, 'npx-elsewhere');
  await fs.mkdir(elsewhere);
  assert.equal(npm(work, elsewhere, ['--yes', '--package', packed.tarball, 'relonix', '--version'], 'npx').trim(), VERSION);
  const npxDir = path.join(work, 'npm-cache', '_npx');
  const [hash, ...more] = await fs.readdir(npxDir);
  assert.deepEqual(more, [], 'one npx install');
  const top = (await fs.readdir(path.join(npxDir, hash!, 'node_modules'))).filter((e) => !e.startsWith('.'));
  assert.deepEqual(top, ['relonix']);
});

test('the installed launcher runs the bundles, and patchelf its small one', () => {
  const bin = path.join(project, 'node_modules', '.bin', 'relonix');
  const run = (args: string[]) => spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, RELONIX_TRACE_LAUNCH: '1' } });
  const main = run(['--version']);
  assert.equal(main.status, EXIT.ok, main.stderr);
  assert.equal(main.stdout.trim(), VERSION);
  assert.match(main.stderr, new RegExp(`running ${installed}/dist/cli/relonix\\.mjs`));
  // a command that loads most of relonix runs the one-file build
  const status = run(['status', '--prefix', path.join(work, 'no-prefix-here'), '--json']);
  assert.equal(status.status, EXIT.ok, status.stderr);
  assert.match(status.stderr, new RegExp(`running ${installed}/dist/relonix\\.mjs`));
  const patchelf = run(['patchelf', '--version']);
  assert.equal(patchelf.status, EXIT.ok, patchelf.stderr);
  assert.equal(patchelf.stdout.trim(), `patchelf 0.14.3 (relonix ${VERSION})`);
  assert.match(patchelf.stderr, new RegExp(`running ${installed}/dist/patchelf\\.mjs`));
});

test("npm install -g into a prefix of its own gives a relonix on that prefix's bin", () => {
  const prefix = installGlobal(work, packed.tarball);
  const r = spawnSync(path.join(prefix, 'bin', 'relonix'), ['--version'], { encoding: 'utf8' });
  assert.equal(r.status, EXIT.ok, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
});

test('an installed package with a broken or missing bundle says it is damaged, not that tsx is missing', async () => {
  const copy = path.join(work, 'damaged');
  await fs.cp(installed, copy, { recursive: true });
  const launcher = path.join(copy, 'bin', 'relonix.js');
  // the split build (env runs from it) and the one-file build (status runs from it)
  for (const [command, bundle] of [
    ['env', path.join(copy, 'dist', 'cli', 'relonix.mjs')],
    ['status', path.join(copy, 'dist', 'relonix.mjs')],
  ] as const) {
    for (const damage of [() => fs.writeFile(bundle, 'export const main = (;\n'), () => fs.rm(bundle)]) {
      await damage();
      const r = spawnSync(process.execPath, [launcher, command], { encoding: 'utf8' });
      assert.equal(r.status, EXIT.failure, r.stderr);
      assert.match(r.stderr, new RegExp(`relonix: error: this relonix package is damaged: ${bundle} does not load`));
      assert.match(r.stderr, /fix: install relonix again/);
      assert.doesNotMatch(r.stderr, /tsx/);
    }
  }
  // patchelf's own bundle is intact and still runs
  const p = spawnSync(process.execPath, [launcher, 'patchelf', '--version'], { encoding: 'utf8' });
  assert.equal(p.status, EXIT.ok, p.stderr);

  // an entry that loads, and a chunk a command reaches that is gone: damaged as well, said the same way
  const partial = path.join(work, 'damaged-chunk');
  await fs.cp(installed, partial, { recursive: true });
  const chunks = path.join(partial, 'dist', 'cli', 'chunks');
  const env = (await fs.readdir(chunks)).find((f) => f.startsWith('env-'));
  assert.ok(env, 'the env command is a chunk of its own');
  await fs.rm(path.join(chunks, env));
  const r = spawnSync(process.execPath, [path.join(partial, 'bin', 'relonix.js'), 'env'], { encoding: 'utf8' });
  assert.equal(r.status, EXIT.failure, r.stderr);
  assert.match(r.stderr, /relonix: error: this relonix package is damaged: a part of it does not load/);
  assert.match(r.stderr, /fix: install relonix again/);
});

// each copy bootstraps each Nix
forEachNix(
  ({ fixture, test }) => {
    let mirror: Mirror;
    before(async () => {
      mirror = await serveFixture(fixture);
    });
    after(async () => {
      await mirror?.close();
    });

    test('the copy installed into a project bootstraps as a uid with no passwd entry, and its store verifies', async () => {
      await bootstrapsAndVerifies(mirror, path.join(project, 'node_modules', '.bin', 'relonix'), `pkg-project-${fixture}`);
    });

    test('dist/relonix.mjs copied alone into an empty directory bootstraps a second prefix, and dist/patchelf.mjs alone reads ELF files', async () => {
      const alone = path.join(work, `single-${fixture}`);
      await fs.mkdir(alone, { mode: 0o755 });
      const file = path.join(alone, 'relonix.mjs');
      await fs.copyFile(path.join(installed, 'dist', 'relonix.mjs'), file);
      const version = await nodeAsNobody(file, ['--version']);
      assert.equal(version.stdout.trim(), VERSION, version.stderr);
      // imported rather than run, the file runs no command: the launcher calls its main
      const imported = spawnSync(
        process.execPath,
        ['--input-type=module', '-e', `const m = await import(${JSON.stringify(file)}); console.log(typeof m.main)`],
        {
          encoding: 'utf8',
        },
      );
      assert.equal(imported.stdout, 'function\n', imported.stderr);
      // patchelf's small bundle stands alone as well
      await fs.copyFile(path.join(installed, 'dist', 'patchelf.mjs'), path.join(alone, 'patchelf.mjs'));
      const interp = spawnSync(process.execPath, [path.join(alone, 'patchelf.mjs'), '--print-interpreter', '/bin/true'], { encoding: 'utf8' });
      assert.equal(interp.status, EXIT.ok, interp.stderr);
      assert.equal(interp.stdout, execFileSync('patchelf', ['--print-interpreter', '/bin/true'], { encoding: 'utf8' }));
      // without the host's xz: the WebAssembly decoder inside the file unpacks the tarball
      await bootstrapsAndVerifies(mirror, file, `pkg-single-${fixture}`, ['RELONIX_NO_HOST_XZ=1']);
    });
  },
  { concurrently: true },
);
