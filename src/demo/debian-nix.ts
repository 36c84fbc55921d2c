// Builds a stand-in for the official Nix binary tarball out of Debian's nix-bin 2.8.0 and its
// shared-library closure: same layout (`install`, `.reginfo`, `store/<hash>-<name>/…`), every ELF
// pointing at /nix/store for its interpreter and libraries, read-only store trees. The demo and the
// tests relocate and run it exactly as they would the real tarball, with no network.

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, promises as fs, realpathSync } from 'node:fs';
import path from 'node:path';
import { formatNarHash, narDigest } from '../store/nar/write.ts';
import { toNixBase32 } from '../store/nixbase32.ts';
import { formatRegInfo, type RegInfo } from '../store/reginfo.ts';
import { RelonixError } from '../util/errors.ts';
import { listTree, removeTree, writeFileAtomic } from '../util/fs.ts';
import { GENERATOR_VERSION, type Manifest } from './fixture.ts';
import { installScript, profileScript } from './install-script.ts';

const VERSION = '2.8.0';
const SYSTEM = 'x86_64-linux';
const STORE = '/nix/store';
const BASE = `nix-${VERSION}-${SYSTEM}`;
const INTERP_NAME = 'ld-linux-x86-64.so.2';
const XZ_LEVEL = process.env.RELONIX_FIXTURE_XZ_LEVEL ?? '6';

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

function preflight(): void {
  const missing: string[] = [];
  if (!existsSync('/usr/bin/nix') || !existsSync('/usr/lib/nix/libnixstore.so')) missing.push('nix-bin');
  for (const [tool, pkg] of [
    ['patchelf', 'patchelf'],
    ['xz', 'xz-utils'],
    ['tar', 'tar'],
    ['dpkg-query', 'dpkg'],
  ] as const) {
    if (!which(tool)) missing.push(pkg);
  }
  if (!existsSync('/etc/ssl/certs/ca-certificates.crt')) missing.push('ca-certificates');
  if (missing.length) {
    throw new RelonixError(`the demo tarball is built from Debian packages that are missing: ${missing.join(', ')}`, {
      hint: `apt-get install nix-bin patchelf xz-utils ca-certificates`,
      kind: 'preflight',
    });
  }
}

/** Store names allow [A-Za-z0-9+-._?=] only; Debian versions may carry an epoch (`1:`) and `~`. */
function storeName(pkg: string, version: string): string {
  return `${pkg}-${version.replace(/^\d+:/, '')}`.replace(/[^A-Za-z0-9+\-._?=]/g, '-');
}

function hashPart(name: string, contentDigest: string): string {
  const h = createHash('sha256').update(`relonix-fixture-${GENERATOR_VERSION}:${name}:${contentDigest}`).digest();
  return toNixBase32(h.subarray(0, 20));
}

async function fileDigest(files: string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${f}\0`);
    for await (const chunk of createReadStream(f)) h.update(chunk as Buffer);
  }
  return h.digest('hex');
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
  if (!out.has(INTERP_NAME)) throw new Error(`ldd ${binary} names no ${INTERP_NAME}`);
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
  throw new Error(`no Debian package owns ${file}`);
}

function packageVersion(pkg: string): string {
  return run('dpkg-query', ['-W', '-f', '${Version}', pkg]).trim();
}

interface PlannedPath {
  key: string;
  name: string;
  hash: string;
  /** files to copy: destination relative to the store path → host source */
  files: Map<string, string>;
  get storePath(): string;
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
  await fs.copyFile(realpathSync(src), dest);
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
    if (!d) throw new Error(`${file} needs ${n}, which is in none of the fixture's store paths`);
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
  if (a !== 0 || b !== 0) throw new Error(`tar | xz failed (${a}/${b}): ${errText}`);
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

/** Which store paths, holding which host files: Nix, one path per library package, the CA bundle. */
async function planPaths(): Promise<Plan> {
  const libs = libraryClosure('/usr/bin/nix');
  const byPkg = new Map<string, Map<string, string>>();
  const nixLibs = new Map<string, string>();
  for (const [soname, file] of libs) {
    const pkg = owningPackage(file);
    if (pkg === 'nix-bin') {
      nixLibs.set(soname, file);
      continue;
    }
    if (!byPkg.has(pkg)) byPkg.set(pkg, new Map());
    byPkg.get(pkg)!.set(soname, file);
  }
  const glibcPkg = owningPackage(libs.get(INTERP_NAME)!);

  const planned: PlannedPath[] = [];
  const mk = (key: string, name: string, files: Map<string, string>, digest: string): PlannedPath => {
    const p: PlannedPath = {
      key,
      name,
      hash: hashPart(name, digest),
      files,
      get storePath() {
        return `${STORE}/${this.hash}-${this.name}`;
      },
    };
    planned.push(p);
    return p;
  };
  const libDirOf = new Map<string, string>();
  const pathOfPkg = new Map<string, PlannedPath>();
  for (const [pkg, sonames] of [...byPkg].sort((a, b) => a[0].localeCompare(b[0]))) {
    const files = new Map<string, string>();
    for (const [soname, file] of sonames) files.set(`lib/${soname}`, file);
    const p = mk(pkg, storeName(pkg, packageVersion(pkg)), files, await fileDigest([...files.values()].sort()));
    pathOfPkg.set(pkg, p);
    for (const soname of sonames.keys()) libDirOf.set(soname, `${p.storePath}/lib`);
  }
  const glibc = pathOfPkg.get(glibcPkg)!;

  const nixFiles = new Map<string, string>([['bin/nix', '/usr/bin/nix']]);
  for (const [soname, file] of nixLibs) nixFiles.set(`lib/${soname}`, file);
  const nix = mk('nix', `nix-${VERSION}`, nixFiles, await fileDigest([...nixFiles.values()].sort()));
  for (const soname of nixLibs.keys()) libDirOf.set(soname, `${nix.storePath}/lib`);

  const caVersion = packageVersion('ca-certificates');
  const cacertFiles = new Map([['etc/ssl/certs/ca-bundle.crt', '/etc/ssl/certs/ca-certificates.crt']]);
  const cacert = mk('cacert', storeName('nss-cacert', caVersion), cacertFiles, await fileDigest(['/etc/ssl/certs/ca-certificates.crt']));
  return { planned, glibc, nix, cacert, libDirOf, interp: `${glibc.storePath}/lib/${INTERP_NAME}` };
}

/** Copies the planned files into `storeOut`, patches every ELF to the store, adds links and text files. */
async function writeTree(storeOut: string, plan: Plan): Promise<{ file: string; interp?: string; runpath?: string }[]> {
  const { planned, glibc, nix, cacert } = plan;
  const local = (p: PlannedPath, rel = '') => path.join(storeOut, path.basename(p.storePath), rel);
  const elfReport: { file: string; interp?: string; runpath?: string }[] = [];
  for (const p of planned) {
    await fs.mkdir(local(p), { recursive: true });
    for (const [rel, src] of p.files) await copyInto(src, local(p, rel));
  }
  for (const p of planned) {
    for (const rel of p.files.keys()) {
      const f = local(p, rel);
      if (path.basename(f) === INTERP_NAME && p === glibc) continue; // never patch the dynamic linker
      const head = Buffer.alloc(4);
      const fh = await fs.open(f, 'r');
      await fh.read(head, 0, 4, 0);
      await fh.close();
      if (!isElf(head)) continue;
      elfReport.push({ file: `${p.storePath}/${rel}`, ...patchElf(f, plan.libDirOf, plan.interp) });
    }
  }
  for (const tool of NIX_TOOLS) await fs.symlink('nix', local(nix, `bin/${tool}`));
  await fs.mkdir(local(nix, 'libexec/nix'), { recursive: true });
  await fs.symlink('../../bin/nix', local(nix, 'libexec/nix/build-remote'));
  await fs.mkdir(local(nix, 'share'), { recursive: true });
  // an absolute symlink into the store, as real closures have, so relocation must rewrite it
  await fs.symlink(`${nix.storePath}/bin`, local(nix, 'share/nix-bin'));
  await fs.mkdir(local(nix, 'etc/profile.d'), { recursive: true });
  await fs.writeFile(local(nix, 'etc/profile.d/nix.sh'), profileScript(nix.storePath, cacert.storePath));
  await fs.mkdir(local(nix, 'lib/pkgconfig'), { recursive: true });
  for (const pc of await fs.readdir('/usr/lib/nix/pkgconfig')) {
    const text = (await fs.readFile(path.join('/usr/lib/nix/pkgconfig', pc), 'utf8'))
      .replace(/^prefix=.*$/m, `prefix=${nix.storePath}`)
      .replace(/^libdir=.*$/m, 'libdir=${prefix}/lib')
      .replace(/^includedir=.*$/m, 'includedir=${prefix}/include');
    await fs.writeFile(local(nix, `lib/pkgconfig/${pc}`), text);
  }
  return elfReport;
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

/** Generates the tarball into `dir` (no reuse check, no lock). */
export async function generateFixture(dir: string, log: (s: string) => void = () => {}): Promise<Manifest> {
  preflight();
  const started = Date.now();
  await fs.mkdir(dir, { recursive: true });
  const work = path.join(dir, `.build-${process.pid}`);
  await removeTree(work);
  try {
    const plan = await planPaths();
    const { nix, cacert } = plan;
    log(`planned ${plan.planned.length} store paths`);
    const top = path.join(work, BASE);
    const storeOut = path.join(top, 'store');
    const elfReport = await writeTree(storeOut, plan);
    const records = await registrationOf(storeOut, plan.planned);
    await fs.writeFile(path.join(top, '.reginfo'), formatRegInfo(records));
    await fs.writeFile(path.join(top, 'install'), installScript(nix.storePath, cacert.storePath), { mode: 0o755 });
    await fs.chmod(path.join(top, 'install'), 0o755);
    log(`patched ${elfReport.length} ELF files; packing`);

    // the manifest is written last, so only a finished run counts
    const tarball = path.join(dir, `${BASE}.tar.xz`);
    const tmpTar = `${tarball}.${process.pid}.tmp`;
    await xzTar(work, BASE, tmpTar);
    const sha256 = await sha256File(tmpTar);
    const bytes = (await fs.stat(tmpTar)).size;
    await fs.rename(tmpTar, tarball);
    await writeFileAtomic(`${tarball}.sha256`, `${sha256}\n`);
    const manifest: Manifest = {
      generator: GENERATOR_VERSION,
      tarball,
      sha256,
      version: VERSION,
      system: SYSTEM,
      nixPath: nix.storePath,
      cacertPath: cacert.storePath,
      storePaths: records.map((r) => r.path),
      dir,
      tarballBytes: bytes,
      generatedMs: Date.now() - started,
    };
    await writeFileAtomic(path.join(dir, 'elf-report.json'), `${JSON.stringify(elfReport, null, 2)}\n`);
    await writeFileAtomic(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return manifest;
  } finally {
    await removeTree(work);
  }
}
