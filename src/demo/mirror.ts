// The demo's local mirror: a Nix tarball in the official release layout, made once from a Debian
// nix-bin and kept with a manifest, so the demo and the tests bootstrap offline from the same bytes.
// Three are made: Debian 12's Nix 2.8 (this machine's nix-bin: the demo's), the same without
// libexec/nix/build-remote, and Debian 13's Nix 2.26 (fetched from Debian, never installed).
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readJson, removeTree, writeFileAtomic } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { packageRoot } from '../util/self.ts';
import { type Fixture, type FixtureName, GENERATOR_VERSION, type Manifest } from './fixture.ts';
import type { FixtureSource } from './fixture-tarball.ts';

/**
 * In a checkout, fixtures/ (shared with the tests); from an installed package, which has no such
 * folder to write into, the user's cache dir.
 */
function defaultRoot(): string {
  const root = packageRoot();
  if (existsSync(path.join(root, 'src', 'demo', 'mirror.ts'))) return path.join(root, 'fixtures');
  const cache = process.env.XDG_CACHE_HOME || path.join(process.env.HOME || os.homedir(), '.cache');
  return path.join(cache, 'relonix', 'demo-mirror');
}

const ROOT = defaultRoot();
/** Where generated tarballs go, one folder per fixture name. */
export const DEFAULT_FIXTURE_DIR = path.join(ROOT, 'generated');
/**
 * Where the .debs fetched from Debian (and apt's index of them) are kept across generations, so only
 * the first needs the network: RELONIX_DEBIAN_CACHE, else fixtures/debian in a checkout.
 */
export const DEBIAN_CACHE_DIR = process.env.RELONIX_DEBIAN_CACHE || path.join(ROOT, 'debian');

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
  const { name, tarball, sha256, version, system, nixPath, cacertPath, storePaths, dir } = m;
  return { name, tarball, sha256, version, system, nixPath, cacertPath, storePaths, dir };
}

async function sourceOf(name: FixtureName, work: string, log: (s: string) => void): Promise<FixtureSource> {
  if (name === '2.26') {
    const { trixieNixSource } = await import('./trixie-nix.ts');
    return trixieNixSource(path.join(work, 'debs'), path.join(DEBIAN_CACHE_DIR, 'trixie'), log);
  }
  const { hostNixSource } = await import('./debian-nix.ts');
  const src = await hostNixSource();
  return name === '2.8' ? src : { ...src, nix: { ...src.nix, buildRemote: false } };
}

/** Generates the tarball `name` into `dir` (no reuse check, no lock). */
async function generate(name: FixtureName, dir: string, log: (s: string) => void): Promise<Manifest> {
  const started = Date.now();
  const work = path.join(dir, `.build-${process.pid}`);
  await removeTree(work);
  try {
    const src = await sourceOf(name, work, log);
    const { writeFixtureTarball } = await import('./fixture-tarball.ts');
    // the name goes into every store path hash: two fixtures never share a path with other contents
    const made = await writeFixtureTarball(dir, work, src, { salt: `${GENERATOR_VERSION}-${name}`, log, started });
    const manifest: Manifest = { ...made, name, generator: GENERATOR_VERSION };
    await writeFileAtomic(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return manifest;
  } finally {
    await removeTree(work);
  }
}

/**
 * The fixture tarball `name` (default 2.8), generated on first use. Test files run in parallel
 * processes, so generation happens under a lock and the others wait for it.
 */
export async function ensureFixture(opts: { name?: FixtureName; dir?: string; force?: boolean; log?: (s: string) => void } = {}): Promise<Fixture> {
  const name = opts.name ?? '2.8';
  const dir = path.resolve(opts.dir ?? path.join(DEFAULT_FIXTURE_DIR, name));
  if (!opts.force) {
    const m = await currentManifest(dir);
    if (m) return toFixture(m);
  }
  await fs.mkdir(dir, { recursive: true });
  return withLock(path.join(dir, '.lock'), { what: `generating the ${name} test fixture`, waitMs: 15 * 60_000 }, async () => {
    if (!opts.force) {
      const m = await currentManifest(dir);
      if (m) return toFixture(m);
    }
    await fs.rm(path.join(dir, 'manifest.json'), { force: true });
    // leftovers of a generation that was killed (we hold the lock, so none is running)
    for (const entry of await fs.readdir(dir)) {
      if (entry.startsWith('.build-') || entry.endsWith('.tmp')) await removeTree(path.join(dir, entry));
    }
    return toFixture(await generate(name, dir, opts.log ?? (() => {})));
  });
}
