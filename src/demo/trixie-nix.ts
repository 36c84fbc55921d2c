// Debian 13's (trixie's) Nix 2.26: one `nix` multi-call binary built against glibc 2.41, and the
// libraries it loads, taken from trixie's own packages (never from this machine, whose glibc is older).
// The closure follows the ELF files: each NEEDED library is looked for in the packages unpacked so
// far, and when it is in none of them, the packages that the needing package depends on are fetched
// and unpacked next, so only what the program loads (and the packages it came in) is downloaded.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { readElf } from '../elf/index.ts';
import { RelonixError } from '../util/errors.ts';
import { withLock } from '../util/lock.ts';
import { type AptPackage, type AptRepo, fetchDebs, showPackages, unpackDeb, updateIndex } from './apt.ts';
import { hostCaBundle, requireFixtureTools, upstreamVersion } from './debian-nix.ts';
import { type FixtureSource, fixtureSourceUnfit, INTERP_NAME, type LibraryPackage } from './fixture-tarball.ts';

const NIX_PACKAGE = 'nix-bin';
const TRIPLET = 'x86_64-linux-gnu';
/** Where Debian puts shared libraries, merged /usr or not. */
const LIB_DIRS = [`usr/lib/${TRIPLET}`, `lib/${TRIPLET}`, 'usr/lib64', 'lib64', 'usr/lib', 'lib'];
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

const TRIXIE_MIRROR = process.env.RELONIX_DEBIAN_MIRROR || 'http://deb.debian.org/debian';

interface Unpacked {
  pkg: AptPackage;
  root: string;
}

/** The real file `rel` names inside `root`, following symlinks (absolute ones from `root`) without leaving it. */
async function fileInside(root: string, rel: string): Promise<string | undefined> {
  let at = rel;
  for (let hops = 0; hops < 40; hops++) {
    const full = path.join(root, at);
    const st = await fs.lstat(full).catch(() => undefined);
    if (!st) return undefined;
    if (!st.isSymbolicLink()) return st.isFile() ? full : undefined;
    const target = await fs.readlink(full);
    at = path.posix.normalize(target.startsWith('/') ? target.slice(1) : path.posix.join(path.posix.dirname(at), target));
    if (at.startsWith('..')) return undefined;
  }
  return undefined;
}

async function findLibrary(unpacked: Unpacked[], soname: string): Promise<{ from: Unpacked; file: string } | undefined> {
  for (const u of unpacked) {
    for (const d of LIB_DIRS) {
      const file = await fileInside(u.root, path.posix.join(d, soname));
      if (file) return { from: u, file };
    }
  }
  return undefined;
}

class Closure {
  readonly unpacked = new Map<string, Unpacked>();
  /** soname → the package and file that provide it */
  readonly provided = new Map<string, { pkg: string; file: string }>();

  constructor(
    private readonly repo: AptRepo,
    private readonly work: string,
    private readonly log: (s: string) => void,
  ) {}

  async add(names: string[]): Promise<void> {
    const fresh = names.filter((n) => !this.unpacked.has(n));
    if (!fresh.length) return;
    const pkgs = [...(await showPackages(this.repo, fresh)).values()];
    const debs = await fetchDebs(this.repo, pkgs);
    for (const p of pkgs) {
      const root = path.join(this.work, p.name);
      await unpackDeb(debs.get(p.name)!, root);
      this.unpacked.set(p.name, { pkg: p, root });
    }
    this.log(`unpacked ${fresh.length} package${fresh.length === 1 ? '' : 's'} of Debian ${this.repo.suite}: ${fresh.join(' ')}`);
  }

  /** Every library `file` (of package `pkg`) loads, found in the packages, fetching dependencies as needed. */
  async resolve(first: { pkg: string; file: string; sonames: string[] }): Promise<void> {
    let todo = [first];
    let pending: { pkg: string; soname: string }[] = [];
    while (todo.length || pending.length) {
      for (const t of todo) for (const soname of t.sonames) if (!this.provided.has(soname)) pending.push({ pkg: t.pkg, soname });
      todo = [];
      const still: typeof pending = [];
      for (const want of pending) {
        if (this.provided.has(want.soname)) continue;
        const hit = await findLibrary([...this.unpacked.values()], want.soname);
        if (!hit) {
          still.push(want);
          continue;
        }
        this.provided.set(want.soname, { pkg: hit.from.pkg.name, file: hit.file });
        todo.push({ pkg: hit.from.pkg.name, file: hit.file, sonames: readElf(await fs.readFile(hit.file), hit.file).needed });
      }
      pending = still;
      if (todo.length || !pending.length) continue;
      // nothing unpacked has them: the packages the needing ones depend on must
      const deps = [...new Set(pending.flatMap((w) => this.unpacked.get(w.pkg)!.pkg.depends))].filter((d) => !this.unpacked.has(d));
      if (!deps.length) {
        throw fixtureSourceUnfit(
          `no package of Debian ${this.repo.suite} that ${NIX_PACKAGE} depends on has ${pending.map((w) => `${w.soname} (needed by ${w.pkg})`).join(', ')}`,
        );
      }
      await this.add(deps);
    }
  }
}

async function collect(repo: AptRepo, work: string, log: (s: string) => void): Promise<FixtureSource> {
  const c = new Closure(repo, work, log);
  await c.add([NIX_PACKAGE]);
  const nix = c.unpacked.get(NIX_PACKAGE)!;
  const binary = path.join(nix.root, 'usr/bin/nix');
  const elf = readElf(await fs.readFile(binary), binary);
  if (!elf.interpreter) throw fixtureSourceUnfit(`${binary} names no program interpreter`);
  await c.resolve({ pkg: NIX_PACKAGE, file: binary, sonames: [...elf.needed, path.basename(elf.interpreter)] });
  if (!c.provided.has(INTERP_NAME)) throw fixtureSourceUnfit(`${binary} does not load ${INTERP_NAME}`);

  const byPkg = new Map<string, Map<string, string>>();
  for (const [soname, { pkg, file }] of c.provided) byPkg.set(pkg, (byPkg.get(pkg) ?? new Map()).set(soname, file));
  const libraries: LibraryPackage[] = [...byPkg].map(([pkg, sonames]) => ({ pkg, version: c.unpacked.get(pkg)!.pkg.version, sonames }));
  // the legacy commands are the package's symlinks to nix
  const bin = path.join(nix.root, 'usr/bin');
  const tools: string[] = [];
  for (const n of (await fs.readdir(bin)).sort()) if (n !== 'nix' && (await fs.readlink(path.join(bin, n)).catch(() => '')) === 'nix') tools.push(n);
  return {
    version: upstreamVersion(nix.pkg.version),
    libraries,
    // as the official tarball of this version is laid out: its build hook is `nix __build-remote`,
    // there is no libexec/nix/build-remote (Debian's package adds one)
    nix: { binary, libs: new Map(), tools, buildRemote: false, pkgconfig: [] },
    caBundle: hostCaBundle(),
  };
}

/** Debian's archive keyring is missing: no signature of its packages could be checked. */
export function noArchiveKeyring(): RelonixError {
  return new RelonixError(`${KEYRING} is missing: the signatures of Debian 13's packages cannot be checked`, {
    kind: 'preflight',
    hint: 'apt-get install debian-archive-keyring',
  });
}

/**
 * Debian 13's Nix and its library closure, unpacked under `work`; apt's files and the .debs are kept
 * in `cacheDir` (a second run reads them offline, and refreshes the index only when the mirror no
 * longer has a package it names).
 */
export async function trixieNixSource(work: string, cacheDir: string, log: (s: string) => void): Promise<FixtureSource> {
  requireFixtureTools("Debian 13's Nix", [
    ['apt-get', 'apt'],
    ['dpkg-deb', 'dpkg'],
    ['dpkg-query', 'dpkg'],
  ]);
  if (!existsSync(KEYRING)) {
    throw noArchiveKeyring();
  }
  const repo: AptRepo = { dir: cacheDir, mirror: TRIXIE_MIRROR, suite: 'trixie', arch: 'amd64', keyring: KEYRING };
  await fs.mkdir(cacheDir, { recursive: true });
  // checkouts may share the cache (RELONIX_DEBIAN_CACHE): one apt at a time in it
  return withLock(path.join(cacheDir, '.lock'), { what: `fetching Debian ${repo.suite} packages`, waitMs: 15 * 60_000 }, async () => {
    await updateIndex(repo, false);
    try {
      return await collect(repo, work, log);
    } catch (e) {
      if (!(e instanceof RelonixError && e.kind === 'network')) throw e;
      // an index older than the mirror names versions it has dropped: read it again, once
      log(`refreshing the Debian ${repo.suite} index (${e.message.split('\n')[0]})`);
      await updateIndex(repo, true);
      await fs.rm(work, { recursive: true, force: true });
      return collect(repo, work, log);
    }
  });
}
