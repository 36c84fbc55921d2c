// The Nix of this machine's Debian (12, bookworm): nix-bin 2.8.0 as installed, its shared libraries
// found with ldd and grouped by the package dpkg says owns them. What the demo's tarball is made of.

import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, realpathSync } from 'node:fs';
import path from 'node:path';
import { RelonixError } from '../util/errors.ts';
import { type FixtureSource, fixtureSourceUnfit, INTERP_NAME, type LibraryPackage } from './fixture-tarball.ts';

const NIX_TOOLS = [
  'nix-build',
  'nix-channel',
  'nix-collect-garbage',
  'nix-copy-closure',
  'nix-daemon',
  'nix-env',
  'nix-hash',
  'nix-instantiate',
  'nix-prefetch-url',
  'nix-shell',
  'nix-store',
];

const PKGCONFIG_DIR = '/usr/lib/nix/pkgconfig';

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(d || '.', cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The tools every fixture is made with (patched, registered, packed); `also` adds a source's own. */
export function requireFixtureTools(what: string, also: [string, string][] = []): void {
  const missing: string[] = [];
  for (const [tool, pkg] of [['patchelf', 'patchelf'], ['xz', 'xz-utils'], ['tar', 'tar'], ...also] as const) {
    if (!which(tool)) missing.push(pkg);
  }
  if (!existsSync('/etc/ssl/certs/ca-certificates.crt')) missing.push('ca-certificates');
  if (missing.length) {
    throw fixtureToolsMissing(what, missing);
  }
}

/** The host lacks tools a fixture is made with (`missing`: their Debian packages). */
export function fixtureToolsMissing(what: string, missing: string[]): RelonixError {
  return new RelonixError(`${what} is built from Debian packages with tools that are missing: ${missing.join(', ')}`, {
    hint: `apt-get install ${[...new Set(missing)].join(' ')}`,
    kind: 'preflight',
  });
}

/** The demo tarball needs Debian's nix-bin on this machine. */
export function noNixBin(): RelonixError {
  return new RelonixError("the demo tarball is built from this machine's Nix 2.8, and Debian's nix-bin is not installed", {
    hint: 'apt-get install nix-bin patchelf xz-utils ca-certificates',
    kind: 'preflight',
  });
}

function preflight(): void {
  if (!existsSync('/usr/bin/nix') || !existsSync('/usr/lib/nix/libnixstore.so')) throw noNixBin();
  requireFixtureTools('the demo tarball', [['dpkg-query', 'dpkg']]);
}

/** soname → host file, from ldd (which gives the transitive closure). */
function libraryClosure(binary: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of run('ldd', [binary]).split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(\/\S+)\s+\(/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
    const interp = /^\s*(\/\S*ld-linux[^\s]*)\s+\(/.exec(line);
    if (interp) out.set(path.basename(interp[1]!), interp[1]!);
  }
  if (!out.has(INTERP_NAME)) throw fixtureSourceUnfit(`ldd ${binary} names no ${INTERP_NAME}`);
  return out;
}

/** The Debian package owning a file; merged-/usr systems register either spelling. */
function owningPackage(file: string): string {
  const candidates = new Set([file, realpathSync(file)]);
  for (const c of [...candidates]) {
    if (c.startsWith('/usr/')) candidates.add(c.slice(4));
    else candidates.add(`/usr${c}`);
  }
  for (const c of candidates) {
    try {
      const line = run('dpkg-query', ['-S', c]).split('\n')[0]!;
      return line.slice(0, line.indexOf(':'));
    } catch {
      // try the next spelling
    }
  }
  throw fixtureSourceUnfit(`no Debian package owns ${file}`);
}

function packageVersion(pkg: string): string {
  return run('dpkg-query', ['-W', '-f', '${Version}', pkg]).trim();
}

/** Pure: the upstream version of a Debian version (`2.26.3+dfsg-1` → `2.26.3`), as `nix --version` says it. */
export function upstreamVersion(debianVersion: string): string {
  const m = /^(?:\d+:)?(\d+(?:\.\d+)+)/.exec(debianVersion);
  if (!m) throw fixtureSourceUnfit(`${debianVersion} is not a Debian version of a release`);
  return m[1]!;
}

/** The machine's CA bundle (only data: any release's will do), named after its package's version. */
export function hostCaBundle(): FixtureSource['caBundle'] {
  return { file: '/etc/ssl/certs/ca-certificates.crt', version: packageVersion('ca-certificates') };
}

/** nix-bin (2.8.0 on Debian 12) as this machine has it: /usr/bin/nix, its libnix* and the libraries they load. */
export async function hostNixSource(): Promise<FixtureSource> {
  preflight();
  const byPkg = new Map<string, Map<string, string>>();
  const nixLibs = new Map<string, string>();
  for (const [soname, file] of libraryClosure('/usr/bin/nix')) {
    const pkg = owningPackage(file);
    if (pkg === 'nix-bin') {
      nixLibs.set(soname, file);
      continue;
    }
    if (!byPkg.has(pkg)) byPkg.set(pkg, new Map());
    byPkg.get(pkg)!.set(soname, file);
  }
  const libraries: LibraryPackage[] = [...byPkg].map(([pkg, sonames]) => ({ pkg, version: packageVersion(pkg), sonames }));
  const pkgconfig = (await fs.readdir(PKGCONFIG_DIR)).sort().map((pc) => path.join(PKGCONFIG_DIR, pc));
  return {
    version: upstreamVersion(packageVersion('nix-bin')),
    libraries,
    nix: { binary: '/usr/bin/nix', libs: nixLibs, tools: NIX_TOOLS, buildRemote: true, pkgconfig },
    caBundle: hostCaBundle(),
  };
}
