// A stand-in for the official Nix binary tarball, made from a Debian Nix and its shared-library
// closure (the files a FixtureSource names): same layout (`install`, `.reginfo`,
// `store/<hash>-<name>/…`), every ELF pointing at /nix/store for its interpreter and libraries,
// read-only store trees. The demo and the tests relocate and run it exactly as they would the real
// tarball, with no network.

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { formatNarHash, narDigest } from '../store/nar/write.ts';
import { toNixBase32 } from '../store/nixbase32.ts';
import { formatRegInfo, type RegInfo } from '../store/reginfo.ts';
import { RelonixError } from '../util/errors.ts';
import { listTree, readHead, removeTree, writeFileAtomic } from '../util/fs.ts';
import type { Manifest } from './fixture.ts';
import { installScript, profileScript } from './install-script.ts';

const SYSTEM = 'x86_64-linux';
const STORE = '/nix/store';
export const INTERP_NAME = 'ld-linux-x86-64.so.2';
const XZ_LEVEL = process.env.RELONIX_FIXTURE_XZ_LEVEL ?? '6';

/** One Debian package's libraries: soname → the file on this machine that holds it. */
export interface LibraryPackage {
  pkg: string;
  version: string;
  sonames: Map<string, string>;
}

/** What a fixture is made of: files on this machine, wherever the Debian packages were unpacked. */
export interface FixtureSource {
  /** Nix's version, as `nix --version` prints it and the tarball is named */
  version: string;
  /** every library the closure needs, one store path per package; one of them holds INTERP_NAME */
  libraries: LibraryPackage[];
  nix: {
    binary: string;
    /** libraries of Nix's own (2.8's libnix*), kept in Nix's store path */
    libs: Map<string, string>;
    /** the legacy commands, symlinks to bin/nix */
    tools: string[];
    /** whether libexec/nix/build-remote (a symlink to bin/nix) is there */
    buildRemote: boolean;
    /** .pc files to rewrite into lib/pkgconfig, when the Nix has libraries to link against */
    pkgconfig: string[];
  };
  caBundle: { file: string; version: string };
}

/** What a generation records of the tarball; the mirror adds the fixture's name and the generator. */
export type Made = Omit<Manifest, 'name' | 'generator'>;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** Store names allow [A-Za-z0-9+-._?=] only; Debian versions may carry an epoch (`1:`) and `~`. */
function storeName(pkg: string, version: string): string {
  return `${pkg}-${version.replace(/^\d+:/, '')}`.replace(/[^A-Za-z0-9+\-._?=]/g, '-');
}

function hashPart(salt: string, name: string, contentDigest: string): string {
  const h = createHash('sha256').update(`relonix-fixture-${salt}:${name}:${contentDigest}`).digest();
  return toNixBase32(h.subarray(0, 20));
}

/** Over the files' names in the store path and their contents: the same files give the same hash wherever they were unpacked. */
async function fileDigest(files: Map<string, string>, extra = ''): Promise<string> {
  const h = createHash('sha256').update(extra);
  for (const [rel, file] of [...files].sort((a, b) => a[0].localeCompare(b[0]))) {
    h.update(`${rel}\0`);
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  }
  return h.digest('hex');
}

interface PlannedPath {
  name: string;
  hash: string;
  /** files to copy: destination relative to the store path → host source */
  files: Map<string, string>;
  storePath: string;
}

function isElf(buf: Buffer): boolean {
  return buf.length >= 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46;
}

/** Hash parts of other store paths that occur in a path's files and symlinks, as Nix's scanner finds them. */
async function scanReferences(root: string, hashes: Map<string, string>): Promise<Set<string>> {
  const found = new Set<string>();
  const re = /[0-9abcdfghijklmnpqrsvwxyz]{32,}/g;
  const scan = (text: string) => {
    for (const m of text.matchAll(re)) {
      for (let i = 0; i + 32 <= m[0].length; i++) {
        const h = m[0].slice(i, i + 32);
        if (hashes.has(h)) found.add(hashes.get(h)!);
      }
    }
  };
  for (const p of [root, ...(await listTree(root))]) {
    const st = await fs.lstat(p);
    if (st.isSymbolicLink()) scan(await fs.readlink(p));
    else if (st.isFile()) scan((await fs.readFile(p)).toString('latin1'));
  }
  return found;
}

async function makeReadOnly(p: string): Promise<void> {
  const st = await fs.lstat(p);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    for (const e of await fs.readdir(p)) await makeReadOnly(path.join(p, e));
    await fs.chmod(p, 0o555);
  } else {
    await fs.chmod(p, st.mode & 0o100 ? 0o555 : 0o444);
  }
}

async function copyInto(src: string, dest: string): Promise<void> {
  await fs.mkdir(path.dirname(dest), { recursive: true });
  await fs.copyFile(await fs.realpath(src), dest);
  const st = await fs.stat(dest);
  await fs.chmod(dest, st.mode & 0o111 ? 0o755 : 0o644);
}

/** Runs patchelf so the file's interpreter and RUNPATH name only store paths; returns what was set. */
function patchElf(file: string, libDirOf: Map<string, string>, interp: string): { interp?: string; runpath?: string } {
  const needed = run('patchelf', ['--print-needed', file]).split('\n').filter(Boolean);
  let hasInterp = false;
  try {
    run('patchelf', ['--print-interpreter', file]);
    hasInterp = true;
  } catch {
    hasInterp = false;
  }
  const dirs: string[] = [];
  for (const n of needed) {
    const d = libDirOf.get(n);
    if (!d) throw fixtureSourceUnfit(`${file} needs ${n}, which is in none of the fixture's store paths`);
    if (!dirs.includes(d)) dirs.push(d);
  }
  const args: string[] = [];
  if (hasInterp) args.push('--set-interpreter', interp);
  if (dirs.length) args.push('--set-rpath', dirs.join(':'));
  else args.push('--remove-rpath');
  args.push(file);
  run('patchelf', args);
  return { interp: hasInterp ? interp : undefined, runpath: dirs.join(':') || undefined };
}

async function xzTar(srcParent: string, entry: string, out: string): Promise<void> {
  // GNU tar for a deterministic archive: sorted names, fixed owner and time.
  const tar = spawn('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1', '--format=gnu', '-cf', '-', '-C', srcParent, entry], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const xz = spawn('xz', ['-T0', `-${XZ_LEVEL}`, '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
  tar.stdout.pipe(xz.stdin);
  const sink = createWriteStream(out);
  xz.stdout.pipe(sink);
  let errText = '';
  tar.stderr.on('data', (d) => (errText += d));
  xz.stderr.on('data', (d) => (errText += d));
  const exit = (p: ReturnType<typeof spawn>) => new Promise<number>((r) => p.on('close', (c) => r(c ?? 1)));
  const [a, b] = await Promise.all([exit(tar), exit(xz), new Promise<void>((r) => sink.on('close', () => r()))]);
  if (a !== 0 || b !== 0) throw fixturePackFailed(out, `${a}/${b}`, errText);
}

/** Nix's packages on this host (or Debian's) are not laid out as the fixture maker reads them: `problem` says how. */
export function fixtureSourceUnfit(problem: string): RelonixError {
  return new RelonixError(problem, {
    hint: "the demo makes its Nix tarball from Debian's Nix packages as Debian 12 and 13 lay them out; elsewhere, bootstrap from a release tarball (relonix bootstrap)",
  });
}

/** tar or xz failed while packing the fixture tarball (`codes`: their exit codes). */
export function fixturePackFailed(out: string, codes: string, said: string): RelonixError {
  return new RelonixError(`tar | xz failed (${codes}): ${said}`, {
    hint: `check that ${path.dirname(out)} has room and is writable, then run the same command again`,
  });
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest('hex');
}

interface Plan {
  planned: PlannedPath[];
  glibc: PlannedPath;
  nix: PlannedPath;
  cacert: PlannedPath;
  /** soname → the store path's lib dir that holds it */
  libDirOf: Map<string, string>;
  interp: string;
}

/** Which store paths, holding which files: Nix, one path per library package, the CA bundle. */
async function planPaths(src: FixtureSource, salt: string): Promise<Plan> {
  const planned: PlannedPath[] = [];
  const mk = (name: string, files: Map<string, string>, digest: string): PlannedPath => {
    const hash = hashPart(salt, name, digest);
    const p: PlannedPath = { name, hash, files, storePath: `${STORE}/${hash}-${name}` };
    planned.push(p);
    return p;
  };
  const libDirOf = new Map<string, string>();
  let glibc: PlannedPath | undefined;
  for (const lib of [...src.libraries].sort((a, b) => a.pkg.localeCompare(b.pkg))) {
    const files = new Map<string, string>();
    for (const [soname, file] of lib.sonames) files.set(`lib/${soname}`, file);
    const p = mk(storeName(lib.pkg, lib.version), files, await fileDigest(files));
    for (const soname of lib.sonames.keys()) libDirOf.set(soname, `${p.storePath}/lib`);
    if (lib.sonames.has(INTERP_NAME)) glibc = p;
  }
  if (!glibc) throw fixtureSourceUnfit(`no library package of the fixture holds ${INTERP_NAME}`);

  const nixFiles = new Map<string, string>([['bin/nix', src.nix.binary]]);
  for (const [soname, file] of src.nix.libs) nixFiles.set(`lib/${soname}`, file);
  // what the generator adds besides the files (links, libexec) changes the path as the files do
  const shape = JSON.stringify({ tools: src.nix.tools, buildRemote: src.nix.buildRemote });
  const nix = mk(`nix-${src.version}`, nixFiles, await fileDigest(nixFiles, shape));
  for (const soname of src.nix.libs.keys()) libDirOf.set(soname, `${nix.storePath}/lib`);

  const cacertFiles = new Map([['etc/ssl/certs/ca-bundle.crt', src.caBundle.file]]);
  const cacert = mk(storeName('nss-cacert', src.caBundle.version), cacertFiles, await fileDigest(cacertFiles));
  return { planned, glibc, nix, cacert, libDirOf, interp: `${glibc.storePath}/lib/${INTERP_NAME}` };
}

type ElfReport = { file: string; interp?: string; runpath?: string }[];

/** Copies the planned files into `storeOut` and patches every ELF to the store. */
async function writeFiles(storeOut: string, plan: Plan): Promise<ElfReport> {
  const local = (p: PlannedPath, rel = '') => path.join(storeOut, path.basename(p.storePath), rel);
  const elfReport: ElfReport = [];
  for (const p of plan.planned) {
    await fs.mkdir(local(p), { recursive: true });
    for (const [rel, src] of p.files) await copyInto(src, local(p, rel));
  }
  for (const p of plan.planned) {
    for (const rel of p.files.keys()) {
      const f = local(p, rel);
      if (path.basename(f) === INTERP_NAME && p === plan.glibc) continue; // never patch the dynamic linker
      if (!isElf(await readHead(f, 4))) continue;
      elfReport.push({ file: `${p.storePath}/${rel}`, ...patchElf(f, plan.libDirOf, plan.interp) });
    }
  }
  return elfReport;
}

/** The links and text files of Nix's store path: legacy commands, build-remote, profile script, .pc files. */
async function writeNixExtras(storeOut: string, src: FixtureSource, plan: Plan): Promise<void> {
  const { nix, cacert } = plan;
  const local = (rel: string) => path.join(storeOut, path.basename(nix.storePath), rel);
  for (const tool of src.nix.tools) await fs.symlink('nix', local(`bin/${tool}`));
  if (src.nix.buildRemote) {
    await fs.mkdir(local('libexec/nix'), { recursive: true });
    await fs.symlink('../../bin/nix', local('libexec/nix/build-remote'));
  }
  await fs.mkdir(local('share'), { recursive: true });
  // an absolute symlink into the store, as real closures have, so relocation must rewrite it
  await fs.symlink(`${nix.storePath}/bin`, local('share/nix-bin'));
  await fs.mkdir(local('etc/profile.d'), { recursive: true });
  await fs.writeFile(local('etc/profile.d/nix.sh'), profileScript(nix.storePath, cacert.storePath));
  if (!src.nix.pkgconfig.length) return;
  await fs.mkdir(local('lib/pkgconfig'), { recursive: true });
  for (const pc of src.nix.pkgconfig) {
    const text = (await fs.readFile(pc, 'utf8'))
      .replace(/^prefix=.*$/m, `prefix=${nix.storePath}`)
      .replace(/^libdir=.*$/m, 'libdir=${prefix}/lib')
      .replace(/^includedir=.*$/m, 'includedir=${prefix}/include');
    await fs.writeFile(local(`lib/pkgconfig/${path.basename(pc)}`), text);
  }
}

/** References, NAR hashes and read-only bits of every path, as the tarball's .reginfo records them. */
async function registrationOf(storeOut: string, planned: PlannedPath[]): Promise<RegInfo[]> {
  const hashes = new Map(planned.map((p) => [p.hash, p.storePath]));
  const records: RegInfo[] = [];
  for (const p of [...planned].sort((a, b) => a.storePath.localeCompare(b.storePath))) {
    const dir = path.join(storeOut, path.basename(p.storePath));
    const refs = [...(await scanReferences(dir, hashes))].sort();
    await makeReadOnly(dir);
    const d = await narDigest(dir);
    records.push({ path: p.storePath, narHash: formatNarHash(d.hash), narSize: d.size, deriver: '', references: refs });
  }
  return records;
}

/**
 * Writes the tarball for `src` into `dir` (no reuse check, no lock), working in `work`; `salt`
 * goes into every made-up store path hash. The manifest is written last, so only a finished run counts.
 */
export async function writeFixtureTarball(
  dir: string,
  work: string,
  src: FixtureSource,
  o: { salt: string; log: (s: string) => void; started: number },
): Promise<Made> {
  const base = `nix-${src.version}-${SYSTEM}`;
  const plan = await planPaths(src, o.salt);
  o.log(`planned ${plan.planned.length} store paths`);
  const top = path.join(work, base);
  const storeOut = path.join(top, 'store');
  const elfReport = await writeFiles(storeOut, plan);
  await writeNixExtras(storeOut, src, plan);
  const records = await registrationOf(storeOut, plan.planned);
  await fs.writeFile(path.join(top, '.reginfo'), formatRegInfo(records));
  await fs.writeFile(path.join(top, 'install'), installScript(plan.nix.storePath, plan.cacert.storePath), { mode: 0o755 });
  await fs.chmod(path.join(top, 'install'), 0o755);
  o.log(`patched ${elfReport.length} ELF files; packing`);

  const tarball = path.join(dir, `${base}.tar.xz`);
  const tmpTar = `${tarball}.${process.pid}.tmp`;
  await xzTar(work, base, tmpTar);
  const sha256 = await sha256File(tmpTar);
  const bytes = (await fs.stat(tmpTar)).size;
  await fs.rename(tmpTar, tarball);
  await writeFileAtomic(`${tarball}.sha256`, `${sha256}\n`);
  await removeTree(top);
  const manifest: Made = {
    tarball,
    sha256,
    version: src.version,
    system: SYSTEM,
    nixPath: plan.nix.storePath,
    cacertPath: plan.cacert.storePath,
    storePaths: records.map((r) => r.path),
    dir,
    tarballBytes: bytes,
    generatedMs: Date.now() - o.started,
  };
  await writeFileAtomic(path.join(dir, 'elf-report.json'), `${JSON.stringify(elfReport, null, 2)}\n`);
  return manifest;
}
