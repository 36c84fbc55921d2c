// Prebuilds `relonix patchelf` into one ESM file (dist/patchelf.mjs) so bin/relonix.js can run it
// without the TypeScript loader: the bootstrap and scripts call it with hundreds of files, often
// in loops, and loader start-up would dominate. Run by `npm ci`/`npm install` (prepare). When
// esbuild is not installed (production installs) the bundle is skipped and the sources run as usual.
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
let esbuild: typeof import('esbuild');
try {
  esbuild = await import('esbuild');
} catch {
  console.error('relonix: esbuild not installed; relonix patchelf runs from the TypeScript sources');
  process.exit(0);
}
mkdirSync(path.join(root, 'dist'), { recursive: true });
await esbuild.build({
  entryPoints: [path.join(root, 'src/commands/patchelf.ts')],
  outfile: path.join(root, 'dist/patchelf.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
