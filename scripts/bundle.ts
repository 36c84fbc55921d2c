// Prebuilds relonix into single ESM files so bin/relonix.js starts without the TypeScript loader:
// dist/relonix.mjs (everything, dependencies included: ~0.14 s to start instead of ~0.55 s) and
// dist/patchelf.mjs (the ELF editor alone, which scripts call with hundreds of files, in loops).
// Each bundle is written with the list of sources it was made from, so the launcher can tell a
// stale bundle from a fresh one. Run by `npm ci`/`npm install` (prepare). Without esbuild
// (production installs) nothing is built and the sources run as usual.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
let esbuild: typeof import('esbuild');
try {
  esbuild = await import('esbuild');
} catch {
  console.error('relonix: esbuild not installed; relonix runs from the TypeScript sources');
  process.exit(0);
}
mkdirSync(path.join(root, 'dist'), { recursive: true });

async function bundle(entry: string, name: string, external: boolean): Promise<void> {
  const outfile = path.join(root, 'dist', name);
  const r = await esbuild.build({
    entryPoints: [path.join(root, entry)],
    outfile: `${outfile}.tmp`,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: external ? 'external' : undefined,
    // CommonJS dependencies inside an ESM bundle still call require()
    banner: external ? undefined : { js: "import { createRequire as __relonixRequire } from 'node:module'; const require = __relonixRequire(import.meta.url);" },
    metafile: true,
    logLevel: 'warning',
  });
  const sources = Object.keys(r.metafile.inputs).filter((f) => !f.includes('node_modules/'));
  // sources first, bundle last: a bundle is only ever next to the list it was made from
  writeFileSync(`${outfile}.sources.json`, JSON.stringify(sources) + '\n');
  renameSync(`${outfile}.tmp`, outfile);
}

await bundle('src/commands/patchelf.ts', 'patchelf.mjs', true);
await bundle('src/cli.ts', 'relonix.mjs', false);
