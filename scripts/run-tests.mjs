#!/usr/bin/env node
// Node 20's test runner takes no globs, so the files are listed here. Pass file names or
// substrings to run a subset: `npm test -- elf`.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const all = readdirSync(path.join(root, 'test'), { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => path.join('test', f));
const filters = process.argv.slice(2);
const files = filters.length ? all.filter((f) => filters.some((x) => f.includes(x))) : all;
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// the tests run relonix as users get it after `npm ci`: from the prebuilt bundle
const built = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bundle.ts'], { cwd: root, stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);
// what runs as a user runs with the host's Nix hidden behind tripwires (test/helpers/hide-nix.ts):
// any use of it, anywhere in the suite, fails the run
const tripwireLog = path.join(os.tmpdir(), `relonix-tripwire-run-${process.pid}.log`);
writeFileSync(tripwireLog, '', { mode: 0o666 });
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, RELONIX_TRIPWIRE_LOG: tripwireLog },
});
const fired = readFileSync(tripwireLog, 'utf8').trim();
rmSync(tripwireLog, { force: true });
if (fired) {
  console.error(`\nthe host's Nix was used where a user's host has none (tripwires fired):\n${fired}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
