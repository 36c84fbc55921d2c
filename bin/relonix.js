#!/usr/bin/env node
// Runs the bundle `npm ci` prebuilt (scripts/bundle.ts) when it is newer than every source it was
// made from; otherwise the TypeScript sources, through tsx. So an edited source is never shadowed by
// a stale bundle, and a checkout without a build still works, only slower to start.
import { readFileSync, statSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;

function freshBundle(name) {
  try {
    const built = statSync(`${root}dist/${name}`).mtimeMs;
    const sources = JSON.parse(readFileSync(`${root}dist/${name}.sources.json`, 'utf8'));
    return sources.every((f) => statSync(root + f).mtimeMs <= built) ? `${root}dist/${name}` : undefined;
  } catch {
    return undefined;
  }
}

async function load(file, exportName) {
  try {
    const f = (await import(file))[exportName];
    if (f && process.env.RELONIX_TRACE_LAUNCH) process.stderr.write(`relonix: running ${file}\n`);
    return f;
  } catch {
    return undefined; // an unreadable bundle: the sources still work
  }
}

// `relonix patchelf` gets its own small bundle: it is called in loops, and every millisecond counts
const patchelf = process.argv[2] === 'patchelf' ? freshBundle('patchelf.mjs') : undefined;
const runPatchelf = patchelf && (await load(patchelf, 'runPatchelf'));
if (runPatchelf) {
  process.exitCode = await runPatchelf(process.argv.slice(3));
} else {
  const bundled = freshBundle('relonix.mjs');
  let main = bundled && (await load(bundled, 'main'));
  if (!main) {
    if (process.env.RELONIX_TRACE_LAUNCH) process.stderr.write(`relonix: running ${root}src (the sources, through tsx)\n`);
    const { register } = await import('tsx/esm/api');
    register();
    ({ main } = await import('../src/cli.ts'));
  }
  await main(process.argv);
}
