// src/host/: what the host lets a prefix use, read from the kernel rather than assumed: the cgroup's
// limits and the build parallelism they allow, mounts and free space, the passwd entry, whether
// orphans are reaped, and what seccomp answers to newer syscalls.
//
// The CPU quota and memory limit this process lives under: its own cgroup's (v2 cpu.max and
// memory.max; v1 cpu.cfs_quota_us / cpu.cfs_period_us and memory.limit_in_bytes) and every
// ancestor's up to the mount, the tightest winning; and the CPUs of its cpuset. A container sees the machine's cores in
// /proc/cpuinfo and its RAM in /proc/meminfo; only the cgroup says what it may really use.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseMounts } from './mounts.ts';

export interface CgroupLimits {
  /** CPUs the quota allows (quota / period), when one is set */
  cpuQuota?: number;
  /** bytes, when a limit is set */
  memoryBytes?: number;
  /** the CPUs the cpuset allows (`0-3,6`) and how many they are, when a cpuset controller is there */
  cpuset?: { list: string; count: number };
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

/** The cgroup hierarchies among the mounts of /proc/self/mountinfo. */
export function parseMountInfo(text: string): CgroupMount[] {
  return parseMounts(text)
    .filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2')
    .map((m) => ({ root: m.root, mountPoint: m.mountPoint, v2: m.fsType === 'cgroup2', controllers: m.fsType === 'cgroup' ? m.superOptions : [] }));
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

/** Pure: how many CPUs a cpuset list names (`0-3,6` → 5); undefined for an empty or unreadable one. */
export function parseCpuList(text: string): { list: string; count: number } | undefined {
  const list = text.trim();
  let count = 0;
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return undefined;
    count += m[2] === undefined ? 1 : Number(m[2]) - Number(m[1]) + 1;
  }
  return count > 0 ? { list, count } : undefined;
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

type HierarchyLimits = { cpu?: number; mem?: number; cpuset?: CgroupLimits['cpuset'] };

/**
 * The CPUs of the process's own cpuset: the kernel keeps a child's within its parent's, and the
 * effective list (v2, and v1 on kernels that have it) already says what the ancestors leave.
 */
async function cpusetOf(mount: CgroupMount, own: string): Promise<CgroupLimits['cpuset']> {
  const names = mount.v2 ? ['cpuset.cpus.effective'] : ['cpuset.effective_cpus', 'cpuset.cpus'];
  if (!mount.v2 && !mount.controllers.includes('cpuset')) return undefined;
  for (const name of names) {
    const text = await readText(path.join(own, name));
    if (text !== undefined) return parseCpuList(text);
  }
  return undefined;
}

/** What one mounted hierarchy limits, read along the chain of the process's cgroup and its ancestors. */
async function limitsOf(mount: CgroupMount, chain: string[]): Promise<HierarchyLimits> {
  const file = (d: string, name: string) => readText(path.join(d, name));
  const cpuset = await cpusetOf(mount, chain[0]!);
  if (mount.v2) {
    return {
      cpu: await tightest(chain, async (d) => parseCpuMax((await file(d, 'cpu.max')) ?? 'max')),
      mem: await tightest(chain, async (d) => parseMemoryLimit((await file(d, 'memory.max')) ?? '')),
      cpuset,
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
    cpuset,
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
    if (!mount.v2 && !['cpu', 'memory', 'cpuset'].some((c) => mount.controllers.includes(c))) continue;
    const member = members.find((m) => (mount.v2 ? m.v2 : !m.v2 && m.controllers.some((c) => mount.controllers.includes(c))));
    if (!member) continue;
    const chain = cgroupChain(mount, member.path).map(at);
    const { cpu, mem, cpuset } = await limitsOf(mount, chain);
    limits.cpuQuota = tighter(limits.cpuQuota, cpu);
    limits.memoryBytes = tighter(limits.memoryBytes, mem);
    limits.cpuset ??= cpuset;
    limits.read.push(chain[0]!);
  }
  return limits;
}
