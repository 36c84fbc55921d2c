// How many derivations to build at once (max-jobs) and how many CPUs each may use (cores), from
// what the cgroup and the affinity mask allow rather than the machine's core count; and which of
// them the user has set, whose word wins.
import type { CgroupLimits } from './cgroup.ts';

/**
 * Memory kept for what runs beside the builds: Nix itself, relonix and its uploader, and the
 * compressor the uploader runs (zstd -9 holds tens of MB).
 */
export const RESERVED_BYTES = 512 * 2 ** 20;

/**
 * The budget of one build process (a compiler a `make -j` slot runs). A C or C++ translation unit
 * of a compiler or browser peaks at 0.5 to 1 GiB in cc1plus, and a link step more; 1 GiB a slot
 * keeps a parallel C++ build under the limit, where the 2 to 4 GiB a whole host usually offers per
 * core would let it overrun a container's. Running one slot fewer is cheap; a kill for memory
 * loses every running build.
 */
export const SLOT_BYTES = 2 ** 30;

export interface Parallelism {
  /** NIX_BUILD_CORES: CPUs one build may use */
  cores: number;
  /** derivations built at once */
  maxJobs: number;
  /** the CPUs and memory the numbers came from */
  cpus: number;
  memoryBytes?: number;
}

/**
 * Pure. Slots are the CPUs (the quota, rounded, and never more than the affinity mask allows),
 * fewer when memory cannot hold one build process per CPU. max-jobs x cores stays within the slots
 * even when every job runs a parallel make, split near the square root: a lone long build (the
 * compiler on the critical path) still gets several cores, and independent small ones run side by side.
 */
export function planParallelism(limits: Pick<CgroupLimits, 'cpuQuota' | 'memoryBytes'>, affinity: number): Parallelism {
  const byQuota = limits.cpuQuota === undefined ? Infinity : Math.max(1, Math.round(limits.cpuQuota));
  const cpus = Math.max(1, Math.min(affinity, byQuota));
  const byMemory = limits.memoryBytes === undefined ? Infinity : Math.max(1, Math.floor((limits.memoryBytes - RESERVED_BYTES) / SLOT_BYTES));
  const slots = Math.max(1, Math.min(cpus, byMemory));
  const maxJobs = Math.max(1, Math.round(Math.sqrt(slots)));
  const cores = Math.max(1, Math.floor(slots / maxJobs));
  return { cores, maxJobs, cpus, memoryBytes: limits.memoryBytes };
}

/** What the user chose themselves; relonix only fills in the rest. */
export interface UserSettings {
  maxJobs: boolean;
  cores: boolean;
  /** their post-build hook, which relonix's hook runs after queueing (Nix takes only one) */
  postBuildHook?: string;
  /** their nix-build arguments without the post-build-hook option, which relonix's replaces */
  args: string[];
}

function confValue(lines: string[], name: string): string | undefined {
  let value: string | undefined;
  for (const line of lines) {
    const m = /^\s*([A-Za-z0-9-]+)\s*=\s*(.*?)\s*$/.exec(line.replace(/#.*$/, ''));
    if (m && m[1] === name) value = m[2];
  }
  return value;
}

/**
 * Pure. Reads nix-build's arguments, the user's own lines of the prefix's nix.conf (outside the
 * managed block) and $NIX_CONFIG (the same syntax) for max-jobs, cores and post-build-hook.
 */
export function userSettings(args: string[], userConf = '', nixConfig = ''): UserSettings {
  const lines = [...userConf.split('\n'), ...nixConfig.split('\n')];
  const s: UserSettings = {
    maxJobs: confValue(lines, 'max-jobs') !== undefined,
    cores: confValue(lines, 'cores') !== undefined,
    postBuildHook: confValue(lines, 'post-build-hook') || undefined,
    args: [],
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-j' || a === '--max-jobs' || /^-j\d+$/.test(a)) s.maxJobs = true;
    else if (a === '--cores') s.cores = true;
    else if (a === '--option' && i + 2 < args.length) {
      const name = args[i + 1]!;
      if (name === 'max-jobs') s.maxJobs = true;
      if (name === 'cores') s.cores = true;
      if (name === 'post-build-hook') {
        s.postBuildHook = args[i + 2] || undefined;
        i += 2;
        continue;
      }
    }
    s.args.push(a);
  }
  return s;
}
