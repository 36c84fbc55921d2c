#!/usr/bin/env node
// Runs relonix from its prebuilt bundle (scripts/bundle.ts): dist/cli/, the build split where it
// loads lazily, so that a start parses only what the command needs.
// - An installed package has no sources beside this file, only the bundle prepack built: it runs,
//   or relonix says the package is damaged. There is no slower way to fall back to.
// - In a checkout the bundle runs only while it is newer than every source it was made from, and
//   the TypeScript sources run through tsx otherwise: an edited source is never shadowed by a stale
//   bundle, and a checkout without a build still works, only slower to start.
import { createRequire } from 'node:module';

// required, not imported: an ESM import of node:fs builds every export, its streams included, which
// costs more start-up time than the rest of this file
const require = createRequire(import.meta.url);
const { existsSync, readFileSync, statSync } = require('node:fs');
const { fileURLToPath } = require('node:url');

const root = fileURLToPath(new URL('..', import.meta.url));
const checkout = existsSync(`${root}src/cli.ts`);

function trace(what) {
  if (process.env.RELONIX_TRACE_LAUNCH) process.stderr.write(`relonix: running ${what}\n`);
}

/** The bundle to run, when there is one that may run. */
function bundle(name) {
  const file = `${root}dist/${name}`;
  if (!checkout) return file;
  try {
    const built = statSync(file).mtimeMs;
    const sources = JSON.parse(readFileSync(`${file}.sources.json`, 'utf8'));
    return sources.every((f) => statSync(root + f).mtimeMs <= built) ? file : undefined;
  } catch {
    return undefined; // no bundle, or none with the list of what it was made from
  }
}

/** The function `file` exports as `exportName`, or the reason it cannot be had. */
async function load(file, exportName) {
  try {
    const f = (await import(file))[exportName];
    if (typeof f !== 'function') throw new Error(`it has no export ${exportName}`);
    trace(file);
    return { f };
  } catch (e) {
    return { why: e instanceof Error ? e.message.split('\n')[0] : String(e) };
  }
}

function damaged(file, why) {
  process.stderr.write(
    `relonix: error: this relonix package is damaged: ${file} does not load (${why})\n` +
      `  fix: install relonix again (npm install relonix, or npx relonix@latest)\n`,
  );
  process.exit(1);
}

async function fromSources() {
  trace(`${root}src (the sources, through tsx)`);
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write(
      `relonix: error: no fresh bundle in ${root}dist and no tsx to run the sources\n  fix: npm ci (installs tsx), or npm run build (builds dist/)\n`,
    );
    process.exit(1);
  }
  register();
  return (await import('../src/cli.ts')).main;
}

/**
 * Whether argv runs a command that loads most of relonix: status, and a bootstrap from a tarball
 * (63 and 74 chunks of the split build, loaded one module after another, where the one-file build
 * parses sooner). A bootstrap from a cache loads fewer layers, and its restore measured slower from
 * the one file (restore stage ~420 against ~450 ms, alternating).
 */
function whole(argv) {
  if (argv[2] === 'status') return true;
  return argv[2] === 'bootstrap' && !argv.slice(3).some((a) => a === '--cache' || a.startsWith('--cache='));
}

// `relonix patchelf` gets its own small bundle: it is called in loops, and every millisecond counts
const patchelf = process.argv[2] === 'patchelf' ? bundle('patchelf.mjs') : undefined;
const runPatchelf = patchelf && (await load(patchelf, 'runPatchelf')).f;
if (runPatchelf) {
  process.exitCode = await runPatchelf(process.argv.slice(3));
} else {
  const file = bundle(whole(process.argv) ? 'relonix.mjs' : 'cli/relonix.mjs');
  const loaded = file ? await load(file, 'main') : { why: 'stale' };
  // a checkout's unreadable or stale bundle: the sources still work
  const main = loaded.f ?? (checkout ? await fromSources() : damaged(file, loaded.why));
  await main(process.argv);
}
