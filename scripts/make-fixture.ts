// Generates (or reuses) the Nix tarball the demo and the tests bootstrap from: src/demo/mirror.ts.
//   npm run fixture            generate (or reuse) fixtures/generated/
//   npm run fixture -- --force regenerate
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Manifest } from '../src/demo/fixture.ts';
import { ensureFixture } from '../src/demo/mirror.ts';
import { RelonixError } from '../src/util/errors.ts';
import { readJson } from '../src/util/fs.ts';

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const force = process.argv.includes('--force');
  const t0 = Date.now();
  ensureFixture({ force, log: (s) => console.error(`make-fixture: ${s}`) })
    .then(async (f) => {
      const m = (await readJson<Manifest>(path.join(f.dir, 'manifest.json')))!;
      console.log(JSON.stringify({ ...f, tarballBytes: m.tarballBytes, generatedMs: m.generatedMs }, null, 2));
      console.error(`make-fixture: done in ${((Date.now() - t0) / 1000).toFixed(1)}s (generation took ${(m.generatedMs / 1000).toFixed(1)}s)`);
    })
    .catch((e) => {
      console.error(`make-fixture: ${e instanceof Error ? e.message : String(e)}`);
      if (e instanceof RelonixError && e.hint) console.error(`hint: ${e.hint}`);
      process.exit(e instanceof RelonixError && e.kind === 'preflight' ? 5 : 1);
    });
}
