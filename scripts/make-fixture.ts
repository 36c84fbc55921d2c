// Generates (or reuses) the Nix tarballs the demo and the tests bootstrap from: src/demo/mirror.ts.
//   npm run fixture                    generate (or reuse) every fixture under fixtures/generated/
//   npm run fixture -- 2.26 [--force]  only the ones named, regenerated with --force
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FIXTURES, type FixtureName, type Manifest } from '../src/demo/fixture.ts';
import { ensureFixture } from '../src/demo/mirror.ts';
import { RelonixError } from '../src/util/errors.ts';
import { readJson } from '../src/util/fs.ts';

async function main(argv: string[]): Promise<void> {
  const force = argv.includes('--force');
  const asked = argv.filter((a) => !a.startsWith('--'));
  const unknown = asked.filter((a) => !(a in FIXTURES));
  if (unknown.length) throw new RelonixError(`no fixture ${unknown.join(', ')}`, { kind: 'usage', hint: `the fixtures: ${Object.keys(FIXTURES).join(', ')}` });
  const names = (asked.length ? asked : Object.keys(FIXTURES)) as FixtureName[];
  for (const name of names) {
    const t0 = Date.now();
    const log = (s: string) => console.error(`make-fixture ${name}: ${s}`);
    const f = await ensureFixture({ name, force, log });
    const m = (await readJson<Manifest>(path.join(f.dir, 'manifest.json')))!;
    console.log(JSON.stringify({ name, tarball: f.tarball, sha256: f.sha256, version: f.version, nixPath: f.nixPath, tarballBytes: m.tarballBytes }));
    log(`${FIXTURES[name]}: done in ${((Date.now() - t0) / 1000).toFixed(1)}s (generation took ${(m.generatedMs / 1000).toFixed(1)}s)`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`make-fixture: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof RelonixError && e.hint) console.error(`hint: ${e.hint}`);
    process.exit(e instanceof RelonixError && e.kind === 'preflight' ? 5 : e instanceof RelonixError && e.kind === 'usage' ? 2 : 1);
  });
}
