// The demo's local mirror: a Nix tarball in the official release layout, made once from Debian's
// nix-bin and kept with a manifest, so the demo and the tests bootstrap offline from the same bytes.
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJson, removeTree } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { generateFixture } from './debian-nix.ts';
import { type Fixture, GENERATOR_VERSION, type Manifest } from './fixture.ts';

/**
 * In a checkout, fixtures/generated (shared with the tests); from an installed package, which has no
 * such folder to write into, the user's cache dir.
 */
function defaultDir(): string {
  // this module runs from src/demo/ or, bundled, from dist/
  const here = path.dirname(fileURLToPath(import.meta.url));
  const checkout = [path.resolve(here, '..', '..'), path.resolve(here, '..')].find((d) => existsSync(path.join(d, 'src', 'demo', 'mirror.ts')));
  if (checkout) return path.join(checkout, 'fixtures', 'generated');
  const cache = process.env.XDG_CACHE_HOME || path.join(process.env.HOME || os.homedir(), '.cache');
  return path.join(cache, 'relonix', 'demo-mirror');
}

export const DEFAULT_FIXTURE_DIR = defaultDir();

/** The manifest of a finished, current generation in `dir`, or undefined (missing, torn or stale). */
export async function currentManifest(dir: string): Promise<Manifest | undefined> {
  const m = await readJson<Manifest>(path.join(dir, 'manifest.json')).catch(() => undefined);
  if (!m || m.generator !== GENERATOR_VERSION) return undefined;
  try {
    const st = await fs.stat(m.tarball);
    if (st.size !== m.tarballBytes) return undefined;
  } catch {
    return undefined;
  }
  return m;
}

function toFixture(m: Manifest): Fixture {
  const { tarball, sha256, version, system, nixPath, cacertPath, storePaths, dir } = m;
  return { tarball, sha256, version, system, nixPath, cacertPath, storePaths, dir };
}

/**
 * The fixture tarball, generated on first use. Test files run in parallel processes, so generation
 * happens under a lock and the others wait for it.
 */
export async function ensureFixture(opts: { dir?: string; force?: boolean; log?: (s: string) => void } = {}): Promise<Fixture> {
  const dir = path.resolve(opts.dir ?? DEFAULT_FIXTURE_DIR);
  if (!opts.force) {
    const m = await currentManifest(dir);
    if (m) return toFixture(m);
  }
  await fs.mkdir(dir, { recursive: true });
  return withLock(path.join(dir, '.lock'), { what: 'generating the test fixture', waitMs: 15 * 60_000 }, async () => {
    if (!opts.force) {
      const m = await currentManifest(dir);
      if (m) return toFixture(m);
    }
    await fs.rm(path.join(dir, 'manifest.json'), { force: true });
    // leftovers of a generation that was killed (we hold the lock, so none is running)
    for (const name of await fs.readdir(dir)) {
      if (name.startsWith('.build-') || name.endsWith('.tmp')) await removeTree(path.join(dir, name));
    }
    return toFixture(await generateFixture(dir, opts.log));
  });
}
