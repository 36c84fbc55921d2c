// Packages of another Debian release, unpacked into a directory of the test's: an apt
// configuration of its own (sources list, lists, cache and status under one directory), so the
// machine's apt state is never touched, and `dpkg -x` (nothing is installed). The lists and the
// .deb files are kept between runs in one directory per suite.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from './tools.ts';

const MIRROR = 'http://deb.debian.org/debian';
/** Lists older than this are fetched again. */
const LISTS_MAX_AGE_MS = 24 * 3600 * 1000;

function arch(): string {
  const r = run('dpkg', ['--print-architecture']);
  if (r.status !== 0) throw new Error(`dpkg --print-architecture: ${r.stderr}`);
  return r.stdout.trim();
}

/** apt-get with everything it reads and writes under `dir`. */
function aptArgs(dir: string): string[] {
  return [
    '-q',
    '-o',
    `Dir::Etc::SourceList=${path.join(dir, 'sources.list')}`,
    '-o',
    'Dir::Etc::SourceParts=/nonexistent',
    '-o',
    `Dir::State::Lists=${path.join(dir, 'lists')}`,
    '-o',
    `Dir::Cache=${path.join(dir, 'cache')}`,
    '-o',
    `Dir::State::status=${path.join(dir, 'status')}`,
    '-o',
    `APT::Architecture=${arch()}`,
    '-o',
    `APT::Architectures=${arch()}`,
    // the download runs as root here; apt's sandbox user could not write into the test's directory
    '-o',
    'APT::Sandbox::User=root',
  ];
}

/** Downloads (once) and unpacks `packages` of Debian `suite` under `into`; returns `into`. */
export function debianPackages(suite: string, packages: string[], into: string): string {
  const dir = path.join(os.tmpdir(), `relonix-debian-${suite}`);
  const debs = path.join(dir, 'debs');
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) mkdirSync(path.join(dir, d), { recursive: true });
  writeFileSync(path.join(dir, 'sources.list'), `deb ${MIRROR} ${suite} main\n`);
  if (!existsSync(path.join(dir, 'status'))) writeFileSync(path.join(dir, 'status'), '');
  const have = () => readdirSync(debs).filter((f) => f.endsWith('.deb'));
  const missing = packages.filter((p) => !have().some((f) => f.startsWith(`${p}_`)));
  if (missing.length) {
    const stamp = path.join(dir, 'updated');
    if (!existsSync(stamp) || Date.now() - statSync(stamp).mtimeMs > LISTS_MAX_AGE_MS) {
      const u = run('apt-get', [...aptArgs(dir), 'update']);
      if (u.status !== 0) throw new Error(`apt-get update for Debian ${suite} failed (the mirror ${MIRROR} must be reachable):\n${u.stdout}\n${u.stderr}`);
      writeFileSync(stamp, '');
    }
    const d = run('apt-get', [...aptArgs(dir), 'download', ...missing], { cwd: debs });
    if (d.status !== 0) throw new Error(`apt-get download ${missing.join(' ')} from Debian ${suite} failed:\n${d.stdout}\n${d.stderr}`);
  }
  mkdirSync(into, { recursive: true });
  for (const p of packages) {
    const deb = have().find((f) => f.startsWith(`${p}_`));
    if (!deb) throw new Error(`no .deb of ${p} from Debian ${suite} in ${debs}`);
    const x = run('dpkg', ['-x', path.join(debs, deb), into]);
    if (x.status !== 0) throw new Error(`dpkg -x ${deb}: ${x.stderr}`);
  }
  return into;
}
