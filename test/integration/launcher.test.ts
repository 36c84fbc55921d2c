// bin/relonix.js runs the prebuilt bundle only while it is newer than every source it was made from,
// and falls back to the TypeScript sources otherwise: an edit is never shadowed by a stale bundle.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { REPO as root } from '../helpers/paths.ts';

function launch(dir: string, args: string[]) {
  const r = spawnSync(process.execPath, [path.join(dir, 'bin', 'relonix.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, RELONIX_TRACE_LAUNCH: '1' },
  });
  return { status: r.status, stdout: r.stdout, ran: /relonix: running (\S+)/.exec(r.stderr)?.[1] ?? `(no trace) ${r.stderr}` };
}

test('the launcher runs a fresh bundle, and the sources once a source is newer or the bundle is broken', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-launch-'));
  try {
    // a copy of the package with its own bundle, so the real checkout's files are never touched
    for (const d of ['bin', 'src', 'scripts', 'package.json', 'tsconfig.json']) await fs.cp(path.join(root, d), path.join(dir, d), { recursive: true });
    await fs.symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    const built = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bundle.ts'], { cwd: dir, encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    const sources: string[] = JSON.parse(await fs.readFile(path.join(dir, 'dist/cli/relonix.mjs.sources.json'), 'utf8'));
    assert.ok(sources.includes('src/cli.ts') && sources.includes('src/cache/restore.ts'), 'the source list names what the bundle was made from');

    let r = launch(dir, ['--version']);
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), '0.1.0');
    assert.equal(r.ran, path.join(dir, 'dist/cli/relonix.mjs'));
    assert.equal(launch(dir, ['patchelf', '--version']).ran, path.join(dir, 'dist/patchelf.mjs'));
    // a command that loads most of relonix: the one-file build
    const status = launch(dir, ['status', '--prefix', path.join(dir, 'no-prefix'), '--json']);
    assert.equal(status.status, 0);
    assert.equal(status.ran, path.join(dir, 'dist/relonix.mjs'));
    // a bootstrap from a tarball too; one from a cache loads less, and keeps the split build
    assert.equal(launch(dir, ['bootstrap', '--help']).ran, path.join(dir, 'dist/relonix.mjs'));
    assert.equal(launch(dir, ['bootstrap', '--cache', 'file:///x', '--help']).ran, path.join(dir, 'dist/cli/relonix.mjs'));
    assert.equal(launch(dir, ['bootstrap', '--cache=file:///x', '--help']).ran, path.join(dir, 'dist/cli/relonix.mjs'));

    // an edited source: the bundle is stale and must not run
    const now = new Date();
    await fs.utimes(path.join(dir, 'src/cache/restore.ts'), now, now);
    const earlier = new Date(now.getTime() - 60_000);
    await fs.utimes(path.join(dir, 'dist/cli/relonix.mjs'), earlier, earlier);
    r = launch(dir, ['--version']);
    assert.equal(r.status, 0);
    assert.equal(r.ran, path.join(dir, 'src'));
    await fs.utimes(path.join(dir, 'dist/relonix.mjs'), earlier, earlier);
    assert.equal(launch(dir, ['status', '--prefix', path.join(dir, 'no-prefix'), '--json']).ran, path.join(dir, 'src'));
    // patchelf's own bundle does not include the cache code, so it stays fresh
    assert.equal(launch(dir, ['patchelf', '--version']).ran, path.join(dir, 'dist/patchelf.mjs'));

    // rebuilt, then broken: a bundle that does not load falls back to the sources too
    assert.equal(spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bundle.ts'], { cwd: dir }).status, 0);
    assert.equal(launch(dir, ['--version']).ran, path.join(dir, 'dist/cli/relonix.mjs'));
    await fs.writeFile(path.join(dir, 'dist/cli/relonix.mjs'), 'this is not javascript(');
    r = launch(dir, ['--version']);
    assert.equal(r.status, 0);
    assert.equal(r.ran, path.join(dir, 'src'));

    // no source list (a bundle from elsewhere): never trusted
    assert.equal(spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bundle.ts'], { cwd: dir }).status, 0);
    await fs.rm(path.join(dir, 'dist/cli/relonix.mjs.sources.json'));
    assert.equal(launch(dir, ['--version']).ran, path.join(dir, 'src'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
