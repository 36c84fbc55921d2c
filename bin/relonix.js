#!/usr/bin/env node
// Runs the TypeScript sources straight after `npm ci`: no build step to forget or to go stale.
import { readdirSync, statSync } from 'node:fs';

// `relonix patchelf` is called with hundreds of files at once and by scripts in loops, so it runs
// from the bundle `npm ci` prebuilds (scripts/elf-bundle.ts) when that is newer than its sources;
// otherwise, like everything else, from the sources.
if (process.argv[2] === 'patchelf') {
  const root = new URL('..', import.meta.url).pathname;
  const sources = ['src/commands/patchelf.ts', ...readdirSync(`${root}src/elf`).map((f) => `src/elf/${f}`)];
  let fresh = false;
  try {
    const built = statSync(`${root}dist/patchelf.mjs`).mtimeMs;
    fresh = sources.every((f) => statSync(root + f).mtimeMs <= built);
  } catch {
    fresh = false;
  }
  if (fresh) {
    let run;
    try {
      ({ runPatchelf: run } = await import(`${root}dist/patchelf.mjs`));
    } catch {
      run = undefined; // an unreadable bundle: the sources below still work
    }
    if (run) process.exitCode = await run(process.argv.slice(3));
  }
}
if (process.exitCode === undefined) {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli.ts');
  await main(process.argv);
}
