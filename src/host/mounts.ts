// The mounts this process sees, from /proc/self/mountinfo: which one holds a path, and with which
// options (read-only, noexec, nosuid). The cgroup reader takes its hierarchies from here too.
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface Mount {
  /** the directory of the mounted filesystem that appears at the mount point (`/` unless a sub-tree) */
  root: string;
  mountPoint: string;
  fsType: string;
  /** the mount's own options (`rw`, `ro`, `noexec`, `nosuid`, …) and the filesystem's (`ro` can be there too) */
  options: string[];
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Pure: every line of /proc/self/mountinfo (`id parent major:minor root point options [tags] - type source super`). */
export function parseMounts(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const before = line.slice(0, sep).split(' ');
    const [fsType = '', , superOpts = ''] = line.slice(sep + 3).split(' ');
    if (before.length < 6) continue;
    out.push({
      root: unescapeMount(before[3]!),
      mountPoint: unescapeMount(before[4]!),
      fsType,
      options: before[5]!.split(','),
      superOptions: superOpts.split(','),
    });
  }
  return out;
}

/** Pure: the mount that holds `file` (an absolute path without symlinks): the last mounted on the longest matching point. */
export function mountOf(mounts: Mount[], file: string): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    const inside = m.mountPoint === '/' || file === m.mountPoint || file.startsWith(`${m.mountPoint}/`);
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

export interface MountFlags {
  mountPoint: string;
  fsType: string;
  readOnly: boolean;
  noexec: boolean;
  nosuid: boolean;
}

/** Pure: what a mount forbids. */
export function mountFlags(m: Mount): MountFlags {
  const has = (o: string) => m.options.includes(o) || m.superOptions.includes(o);
  return { mountPoint: m.mountPoint, fsType: m.fsType, readOnly: has('ro'), noexec: has('noexec'), nosuid: has('nosuid') };
}

/** The mounts this process sees; none when /proc is not there. */
export function readMounts(): Mount[] {
  try {
    return parseMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return [];
  }
}

/** The flags of the mount that holds `real` (a path without symlinks), when /proc tells. */
export function flagsAt(real: string, mounts: Mount[] = readMounts()): MountFlags | undefined {
  const m = mountOf(mounts, path.resolve(real));
  return m && mountFlags(m);
}
