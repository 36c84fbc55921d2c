// src/host/: what the host lets a prefix use, read from the kernel rather than assumed: the cgroup's
// CPU quota and memory limit, and the build parallelism they allow.
//
// The CPU quota and memory limit this process lives under: its own cgroup's (v2 cpu.max and
// memory.max; v1 cpu.cfs_quota_us / cpu.cfs_period_us and memory.limit_in_bytes) and every
// ancestor's up to the mount, the tightest winning. A container sees the machine's cores in
// /proc/cpuinfo and its RAM in /proc/meminfo; only the cgroup says what it may really use.
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface CgroupLimits {
  /** CPUs the quota allows (quota / period), when one is set */
  cpuQuota?: number;
  /** bytes, when a limit is set */
  memoryBytes?: number;
  /** the cgroup directories that were read, for messages */
  read: string[];
}

/** One line of /proc/self/cgroup: `hierarchy-id:controllers:path` (v2 is `0::path`). */
export interface Membership {
  controllers: string[];
  path: string;
  v2: boolean;
}

export interface CgroupMount {
  /** the directory of the hierarchy that is mounted (`/` unless a container got a sub-tree) */
  root: string;
  mountPoint: string;
  v2: boolean;
  /** for v1: the controllers this hierarchy carries */
  controllers: string[];
}

export function parseProcCgroup(text: string): Membership[] {
  const out: Membership[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const controllers = m[2] ? m[2].split(',') : [];
    out.push({ controllers, path: m[3]!, v2: m[1] === '0' && controllers.length === 0 });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The cgroup mounts among /proc/self/mountinfo's lines. */
export function parseMountInfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const before = line.slice(0, sep).split(' ');
    const [fsType, , superOpts = ''] = line.slice(sep + 3).split(' ');
    if ((fsType !== 'cgroup' && fsType !== 'cgroup2') || before.length < 5) continue;
    out.push({
      root: unescapeMount(before[3]!),
      mountPoint: unescapeMount(before[4]!),
      v2: fsType === 'cgroup2',
      controllers: fsType === 'cgroup' ? superOpts.split(',') : [],
    });
  }
  return out;
}

/**
 * The directory of a cgroup under a mount, then its ancestors up to the mount point. A path outside
 * the mounted sub-tree (a container that sees only its own part) is the mount point itself.
 */
export function cgroupChain(mount: CgroupMount, cgroupPath: string): string[] {
  const root = mount.root.replace(/\/+$/, '');
  const inside = cgroupPath === mount.root || cgroupPath.startsWith(`${root}/`);
  const rel = inside ? cgroupPath.slice(root.length) : '';
  const chain: string[] = [];
  for (let p = path.join(mount.mountPoint, rel); ; p = path.dirname(p)) {
    chain.push(p);
    if (p === mount.mountPoint || p === path.dirname(p)) break;
  }
  return chain;
}

/** v2 `cpu.max`: `max 100000` (no quota) or `QUOTA PERIOD` → CPUs. */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  return cpus(quota, period ?? '100000');
}

/** v1: cpu.cfs_quota_us (-1 for none) over cpu.cfs_period_us. */
export function parseCfsQuota(quota: string, period: string): number | undefined {
  return cpus(quota.trim(), period.trim());
}

function cpus(quota: string | undefined, period: string): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  return quota && quota !== 'max' && q > 0 && p > 0 ? q / p : undefined;
}

/**
 * v2 `memory.max` (`max` for none) or v1 `memory.limit_in_bytes`, which says "none" with a number
 * near 2^63 rounded down to a page.
 */
export function parseMemoryLimit(text: string): number | undefined {
  const t = text.trim();
  if (t === '' || t === 'max' || !/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n >= 2 ** 60 ? undefined : n;
}

async function readText(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch(() => undefined);
}

const tighter = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));

/** The tightest of one value file (or pair) over a chain of cgroup directories. */
async function tightest(chain: string[], read: (dir: string) => Promise<number | undefined>): Promise<number | undefined> {
  let best: number | undefined;
  for (const dir of chain) best = tighter(best, await read(dir));
  return best;
}

/** What one mounted hierarchy limits, read along the chain of the process's cgroup and its ancestors. */
async function limitsOf(mount: CgroupMount, chain: string[]): Promise<{ cpu?: number; mem?: number }> {
  const file = (d: string, name: string) => readText(path.join(d, name));
  if (mount.v2) {
    return {
      cpu: await tightest(chain, async (d) => parseCpuMax((await file(d, 'cpu.max')) ?? 'max')),
      mem: await tightest(chain, async (d) => parseMemoryLimit((await file(d, 'memory.max')) ?? '')),
    };
  }
  const cpuQuota = async (d: string) => {
    const [q, p] = await Promise.all([file(d, 'cpu.cfs_quota_us'), file(d, 'cpu.cfs_period_us')]);
    return q && p ? parseCfsQuota(q, p) : undefined;
  };
  return {
    cpu: mount.controllers.includes('cpu') ? await tightest(chain, cpuQuota) : undefined,
    mem: mount.controllers.includes('memory')
      ? await tightest(chain, async (d) => parseMemoryLimit((await file(d, 'memory.limit_in_bytes')) ?? ''))
      : undefined,
  };
}

/**
 * Reads the limits from the files under `root` (`/` on a real host; a fake tree in tests). Both
 * hierarchies are read: on a hybrid host the memory controller sits in v1 while v2 is mounted too.
 */
export async function readCgroupLimits(root = '/'): Promise<CgroupLimits> {
  const at = (p: string) => path.join(root, p);
  const members = parseProcCgroup((await readText(at('proc/self/cgroup'))) ?? '');
  const mounts = parseMountInfo((await readText(at('proc/self/mountinfo'))) ?? '');
  const limits: CgroupLimits = { read: [] };
  for (const mount of mounts) {
    if (!mount.v2 && !mount.controllers.includes('cpu') && !mount.controllers.includes('memory')) continue;
    const member = members.find((m) => (mount.v2 ? m.v2 : !m.v2 && m.controllers.some((c) => mount.controllers.includes(c))));
    if (!member) continue;
    const chain = cgroupChain(mount, member.path).map(at);
    const { cpu, mem } = await limitsOf(mount, chain);
    limits.cpuQuota = tighter(limits.cpuQuota, cpu);
    limits.memoryBytes = tighter(limits.memoryBytes, mem);
    limits.read.push(chain[0]!);
  }
  return limits;
}
