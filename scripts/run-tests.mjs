#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// The suite in two halves: test/unit/ (pure, seconds, nothing to build) first, then
// test/integration/ (the host's tools, servers, root, the fixture and the built bundle).
//   node scripts/run-tests.mjs [--unit | --integration] [FILTER...]
// Node 20's test runner takes no globs, so the files are listed here; a FILTER keeps the files whose
// path contains it (`npm test -- elf`).
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const HALVES = ['unit', 'integration'];

const testFiles = (dir) =>
  readdirSync(path.join(root, dir), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.join(dir, f));

// a test file outside the two halves would run in neither
const stray = testFiles('test').filter((f) => !HALVES.some((h) => f.startsWith(path.join('test', h) + path.sep)));
if (stray.length) {
  console.error(`test files must live in test/unit/ (pure) or test/integration/: ${stray.join(', ')}`);
  process.exit(1);
}

const args = process.argv.slice(2);
const only = HALVES.find((h) => args.includes(`--${h}`));
const filters = args.filter((a) => !a.startsWith('--'));
const picked = (only ? [only] : HALVES).map((half) => ({
  half,
  files: testFiles(path.join('test', half)).filter((f) => !filters.length || filters.some((x) => f.includes(x))),
}));
if (picked.every((p) => p.files.length === 0)) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}

const runner = (files, preload = [], env = process.env) =>
  spawnSync(process.execPath, ['--import', 'tsx', ...preload, '--test', '--test-reporter=spec', ...files], { cwd: root, stdio: 'inherit', env }).status ?? 1;

// a unit test that starts a process or opens a socket fails (test/helpers/pure.ts)
const unit = (files) => runner(files, ['--import', './test/helpers/pure.ts']);

function integration(files) {
  // the tests run relonix as users get it from the package: from the bundle, built here first
  const built = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bundle.ts'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) return built.status ?? 1;
  // what runs as a user runs with the host's Nix hidden behind tripwires (test/helpers/hide-nix.ts):
  // any use of it, anywhere in this half, fails the run
  const tripwireLog = path.join(os.tmpdir(), `relonix-tripwire-run-${process.pid}.log`);
  writeFileSync(tripwireLog, '', { mode: 0o666 });
  const status = runner(files, [], { ...process.env, RELONIX_TRIPWIRE_LOG: tripwireLog });
  const fired = readFileSync(tripwireLog, 'utf8').trim();
  rmSync(tripwireLog, { force: true });
  if (fired) {
    console.error(`\nthe host's Nix was used where a user's host has none (tripwires fired):\n${fired}`);
    return 1;
  }
  return status;
}

// both halves run even when the first fails, so one run reports everything
const failed = [];
for (const { half, files } of picked) {
  if (files.length === 0) continue;
  console.log(`\n# ${half}: ${files.length} file${files.length === 1 ? '' : 's'}`);
  if ((half === 'unit' ? unit(files) : integration(files)) !== 0) failed.push(half);
}
if (failed.length) console.error(`\nfailed: ${failed.join(', ')}`);
process.exit(failed.length ? 1 : 0);
