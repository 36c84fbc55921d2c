// Packages of another Debian release, fetched by apt with a configuration of its own: its own sources
// list (and no sources.list.d), lists, cache, state dir and an empty status file, so the machine's apt
// state is neither read nor written. apt checks the release file's signature against the Debian
// archive keyring and each .deb against the signed index; the .debs stay in the cache, so a second
// run needs no network.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { RelonixError } from '../util/errors.ts';
import { exists, writeFileAtomic } from '../util/fs.ts';

const execFileP = promisify(execFile);

export interface AptRepo {
  /** where the sources list, lists, cache and .debs live */
  dir: string;
  mirror: string;
  suite: string;
  arch: string;
  keyring: string;
}

export interface AptPackage {
  name: string;
  version: string;
  sha256: string;
  /** the package's Architecture: the machine's, or `all` */
  arch: string;
  /** Depends and Pre-Depends, the first alternative of each, without versions or architectures */
  depends: string[];
}

const at = (r: AptRepo, ...p: string[]) => path.join(r.dir, ...p);

/** The options that point apt at the repo's own files and nothing of the machine's. */
function options(r: AptRepo): string[] {
  const o: Record<string, string> = {
    'Dir::Etc::SourceList': at(r, 'sources.list'),
    'Dir::Etc::SourceParts': at(r, 'sources.list.d'),
    'Dir::Etc::Preferences': at(r, 'preferences'),
    'Dir::Etc::PreferencesParts': at(r, 'preferences.d'),
    'Dir::State': at(r, 'state'),
    'Dir::State::Lists': at(r, 'lists'),
    'Dir::State::status': at(r, 'status'),
    'Dir::Cache': at(r, 'cache'),
    'APT::Architecture': r.arch,
    'APT::Architectures': r.arch,
    // root's downloads stay root's: the repo dir need not be writable by the _apt user
    'APT::Sandbox::User': 'root',
  };
  return Object.entries(o).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
}

async function apt(r: AptRepo, cmd: 'apt-get' | 'apt-cache', args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, [...options(r), ...args], { cwd, maxBuffer: 256 << 20, env: { ...process.env, LC_ALL: 'C' } });
    return stdout;
  } catch (e) {
    throw aptFailed(r, `${cmd} ${args.slice(0, 3).join(' ')}`, e);
  }
}

/** The repo's sources list and empty state, then the index (`apt-get update`) unless it is there and `refresh` is false. */
export async function updateIndex(r: AptRepo, refresh: boolean): Promise<void> {
  for (const d of ['sources.list.d', 'preferences.d', 'state', 'lists/partial', 'cache/archives/partial', 'debs'])
    await fs.mkdir(at(r, d), { recursive: true });
  await writeFileAtomic(at(r, 'sources.list'), `deb [signed-by=${r.keyring}] ${r.mirror} ${r.suite} main\n`);
  if (!(await exists(at(r, 'status')))) await fs.writeFile(at(r, 'status'), '');
  const lists = await fs.readdir(at(r, 'lists'));
  if (!refresh && lists.some((n) => n.includes('_Packages'))) return;
  await apt(r, 'apt-get', ['update', '-q']);
}

/** Pure: the packages of a Depends field, first alternatives, bare names (`a (>= 1), b:any | c` → a, b). */
export function dependsNames(field: string): string[] {
  return field
    .split(',')
    .map(
      (alt) =>
        alt
          .split('|')[0]!
          .trim()
          .split(/[\s(:]/)[0]!,
    )
    .filter(Boolean);
}

/** Pure: the stanzas `apt-cache show` printed, by package name (the first stanza of each wins). */
export function parseStanzas(text: string): Map<string, AptPackage> {
  const out = new Map<string, AptPackage>();
  for (const block of text.split(/\n\s*\n/)) {
    const f = new Map<string, string>();
    let key = '';
    for (const line of block.split('\n')) {
      if (/^\s/.test(line) && key) f.set(key, `${f.get(key)}\n${line.trim()}`);
      else if (line.includes(':')) {
        key = line.slice(0, line.indexOf(':'));
        f.set(key, line.slice(key.length + 1).trim());
      }
    }
    const name = f.get('Package');
    if (!name || out.has(name)) continue;
    out.set(name, {
      name,
      version: f.get('Version') ?? '',
      sha256: f.get('SHA256') ?? '',
      arch: f.get('Architecture') ?? '',
      depends: dependsNames([f.get('Pre-Depends'), f.get('Depends')].filter(Boolean).join(', ')),
    });
  }
  return out;
}

/** What the index says of each package (the candidate version). */
export async function showPackages(r: AptRepo, names: string[]): Promise<Map<string, AptPackage>> {
  const found = parseStanzas(await apt(r, 'apt-cache', ['show', '--no-all-versions', ...names]));
  const missing = names.filter((n) => !found.has(n));
  if (missing.length) throw noDebianPackage(r, missing);
  return found;
}

async function sha256Of(file: string): Promise<string | undefined> {
  try {
    const h = createHash('sha256');
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
    return h.digest('hex');
  } catch {
    return undefined;
  }
}

/** Pure: the file name apt-get download gives a package (an epoch's colon is written %3a). */
export const debFileName = (p: Pick<AptPackage, 'name' | 'version' | 'arch'>) => `${p.name}_${p.version.replace(/:/g, '%3a')}_${p.arch}.deb`;

/** The .deb of each package, from the cache when the file there has the index's sha256, else downloaded into it. */
export async function fetchDebs(r: AptRepo, pkgs: AptPackage[]): Promise<Map<string, string>> {
  const dir = at(r, 'debs');
  const out = new Map<string, string>();
  const find = async (p: AptPackage) => {
    const f = path.join(dir, debFileName(p));
    return (await sha256Of(f)) === p.sha256 ? f : undefined;
  };
  const wanted: AptPackage[] = [];
  for (const p of pkgs) {
    const f = await find(p);
    if (f) out.set(p.name, f);
    else wanted.push(p);
  }
  if (wanted.length) await apt(r, 'apt-get', ['download', '-q', ...wanted.map((p) => `${p.name}=${p.version}`)], dir);
  for (const p of wanted) {
    const f = await find(p);
    if (!f) throw debNotAsIndexed(r, p, dir);
    out.set(p.name, f);
  }
  return out;
}

/** `dpkg -x`: the package's files under `dest`, nothing run, nothing registered. */
export async function unpackDeb(deb: string, dest: string): Promise<void> {
  await fs.mkdir(dest, { recursive: true });
  await execFileP('dpkg-deb', ['-x', deb, dest], { maxBuffer: 64 << 20 });
}

/** apt-get or apt-cache failed (`what`: the command and its first arguments): the mirror, mostly. */
export function aptFailed(r: AptRepo, what: string, e: unknown): RelonixError {
  const err = e as { stderr?: string; message: string };
  return new RelonixError(`${what} for Debian ${r.suite} failed: ${(err.stderr || err.message).trim().split('\n').slice(-6).join('\n')}`, {
    kind: 'network',
    hint: `${r.mirror} must be reachable (an apt proxy in /etc/apt/apt.conf.d applies); the apt files are in ${r.dir}`,
    cause: e,
  });
}

/** The index names no such package. */
export function noDebianPackage(r: AptRepo, missing: string[]): RelonixError {
  return new RelonixError(`Debian ${r.suite} has no package ${missing.join(', ')}`, {
    hint: `the demo reads Debian ${r.suite}'s index from ${r.mirror} (RELONIX_DEBIAN_MIRROR names another mirror); remove ${r.dir} to read it anew`,
  });
}

/** A downloaded .deb whose sha256 is not the one the signed index gives. */
export function debNotAsIndexed(r: AptRepo, p: Pick<AptPackage, 'name' | 'version'>, dir: string): RelonixError {
  return new RelonixError(`${p.name} ${p.version} was downloaded but no file in ${dir} has the sha256 the index gives`, {
    kind: 'integrity',
    hint: `${r.mirror} served another file than its signed index names: run again, or name another mirror with RELONIX_DEBIAN_MIRROR`,
  });
}
