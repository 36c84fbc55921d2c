// What `relonix status` says about durable builds: the queue (built, not yet in the cache: what a
// wipe of the prefix would still lose) and the parallelism a build would get on this host now.
import os from 'node:os';
import { readCgroupLimits } from '../host/cgroup.ts';
import { type Parallelism, planParallelism } from '../host/parallelism.ts';
import type { Layout } from '../prefix/layout.ts';
import { queueStatus } from './queue.ts';

export interface BuildStatus {
  queue: { pending: string[]; dir: string };
  parallelism: Parallelism & { cgroups: string[] };
}

export async function buildStatus(l: Layout): Promise<BuildStatus> {
  const [queue, limits] = await Promise.all([queueStatus(l), readCgroupLimits()]);
  return { queue, parallelism: { ...planParallelism(limits, os.availableParallelism()), cgroups: limits.read } };
}
