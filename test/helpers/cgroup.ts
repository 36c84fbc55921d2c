// Real cgroups with limits, made as root for one test and removed after it: in the v2 tree where
// /sys/fs/cgroup is a cgroup2 mount with the controllers, else in each v1 hierarchy that carries a
// controller (on a v1 or hybrid host a controller belongs to one hierarchy at a time). A process
// joins by writing its pid to every `procs` file before it starts the program under test.
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { cgroupChain, parseMountInfo, parseProcCgroup } from '../../src/host/cgroup.ts';

export interface CgroupSpec {
  memoryBytes?: number;
  /** CPUs of quota per period (1.5: 150 ms of every 100 ms) */
  cpuQuota?: number;
  /** a cpuset list, `0` or `0-1` */
  cpus?: string;
}

export interface Cgroups {
  /** the cgroup.procs files to write the joining pid into */
  procs: string[];
  /** each cgroup directory made (what relonix reports it read) */
  dirs: string[];
}

const PERIOD_US = 100_000;

type Controller = 'memory' | 'cpu' | 'cpuset';

function wanted(spec: CgroupSpec): Controller[] {
  return [
    ...(spec.memoryBytes !== undefined ? ['memory' as const] : []),
    ...(spec.cpuQuota !== undefined ? ['cpu' as const] : []),
    ...(spec.cpus ? ['cpuset' as const] : []),
  ];
}

/** The files to write in a cgroup of `controller` for `spec`, in order (cpuset needs its memory nodes first). */
function limitFiles(controller: Controller, spec: CgroupSpec, v2: boolean, parent: string): [string, string][] {
  switch (controller) {
    case 'memory':
      return [[v2 ? 'memory.max' : 'memory.limit_in_bytes', String(spec.memoryBytes)]];
    case 'cpu': {
      const quota = String(Math.round(spec.cpuQuota! * PERIOD_US));
      return v2
        ? [['cpu.max', `${quota} ${PERIOD_US}`]]
        : [
            ['cpu.cfs_period_us', String(PERIOD_US)],
            ['cpu.cfs_quota_us', quota],
          ];
    }
    case 'cpuset':
      return v2
        ? [['cpuset.cpus', spec.cpus!]]
        : [
            ['cpuset.mems', readFileSync(path.join(parent, 'cpuset.mems'), 'utf8').trim()],
            ['cpuset.cpus', spec.cpus!],
          ];
  }
}

async function child(t: TestContext, parent: string): Promise<string> {
  const dir = path.join(parent, `relonix-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  await fs.mkdir(dir);
  t.after(() => fs.rmdir(dir));
  return dir;
}

/** Cgroups holding `spec`'s limits, v2 when the unified tree has every controller needed, else v1. */
export async function makeCgroups(t: TestContext, spec: CgroupSpec): Promise<Cgroups> {
  const controllers = wanted(spec);
  const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const v2 = mounts.find((m) => m.v2 && m.mountPoint === '/sys/fs/cgroup');
  const v2Has = v2 ? readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').trim().split(/\s+/) : [];
  if (v2 && controllers.every((c) => v2Has.includes(c))) {
    const subtree = readFileSync('/sys/fs/cgroup/cgroup.subtree_control', 'utf8').split(/\s+/);
    for (const c of controllers) if (!subtree.includes(c)) await fs.writeFile('/sys/fs/cgroup/cgroup.subtree_control', `+${c}`);
    const dir = await child(t, '/sys/fs/cgroup');
    for (const c of controllers) for (const [f, v] of limitFiles(c, spec, true, '/sys/fs/cgroup')) await fs.writeFile(path.join(dir, f), v);
    return { procs: [path.join(dir, 'cgroup.procs')], dirs: [dir] };
  }
  const members = parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8'));
  const out: Cgroups = { procs: [], dirs: [] };
  for (const c of controllers) {
    const mount = mounts.find((m) => !m.v2 && m.controllers.includes(c));
    const member = members.find((m) => m.controllers.includes(c));
    if (!mount || !member) {
      throw new Error(`this machine has no ${c} controller to make a cgroup with (neither in the cgroup2 tree at /sys/fs/cgroup nor in a v1 hierarchy)`);
    }
    const parent = cgroupChain(mount, member.path)[0]!;
    if (!existsSync(parent)) throw new Error(`the ${c} cgroup of this process, ${parent}, is not there`);
    const dir = await child(t, parent);
    for (const [f, v] of limitFiles(c, spec, false, parent)) await fs.writeFile(path.join(dir, f), v);
    out.procs.push(path.join(dir, 'cgroup.procs'));
    out.dirs.push(dir);
  }
  return out;
}

/** sh lines that move the shell into the cgroups (what it execs next starts inside them). */
export function joinCgroups(c: Cgroups): string {
  return c.procs.map((p) => `echo $$ > '${p}'`).join('\n');
}
