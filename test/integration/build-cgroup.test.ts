// The cgroup reading against the kernel's own files: a child cgroup with a memory limit is made
// (as root), relonix is moved into it before it starts, and `relonix status` must see the limit
// and size max-jobs x cores by it, in whichever hierarchy holds the memory controller: cgroup v2
// (/sys/fs/cgroup a cgroup2 mount with memory) where the machine boots the unified hierarchy, v1 on
// a hybrid or v1 host (the controller belongs to one hierarchy at a time). No memory controller at
// all fails, saying why.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { cgroupChain, parseMountInfo, parseProcCgroup } from '../../src/host/cgroup.ts';
import { RESERVED_BYTES, SLOT_BYTES } from '../../src/host/parallelism.ts';
import { withoutHostNix } from '../helpers/hide-nix.ts';
import { RELONIX } from '../helpers/paths.ts';
import { requireRoot } from '../helpers/tools.ts';

const LIMIT = 3 * 2 ** 30;

/** Runs `relonix status --json` (the host's Nix hidden) as a process that first moves itself into a cgroup. */
function statusInside(procsFile: string): { memoryBytes?: number; maxJobs: number; cores: number; cgroups: string[] } {
  // sh writes its own pid, then becomes relonix: the limit holds from relonix's first instruction
  const script = `echo $$ > '${procsFile}' && exec '${process.execPath}' '${RELONIX}' status --json --prefix /nonexistent/relonix-cgroup-test`;
  const [cmd, ...args] = withoutHostNix(['sh', '-c', script]);
  const r = spawnSync(cmd!, args, { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/tmp' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).buildParallelism;
}

function expectSized(p: { memoryBytes?: number; maxJobs: number; cores: number }): void {
  assert.equal(p.memoryBytes, LIMIT, 'the limit of the cgroup relonix runs in');
  const slots = Math.floor((LIMIT - RESERVED_BYTES) / SLOT_BYTES);
  assert.ok(p.maxJobs * p.cores <= slots, `max-jobs ${p.maxJobs} x cores ${p.cores} fits ${slots} slots`);
}

/** Why /sys/fs/cgroup cannot take a v2 child with a memory limit, or undefined when it can. */
function noV2Memory(): string | undefined {
  const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const v2 = mounts.find((m) => m.v2 && m.mountPoint === '/sys/fs/cgroup');
  const controllers = v2 ? readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').trim().split(/\s+/) : [];
  if (v2 && controllers.includes('memory')) return undefined;
  const elsewhere = mounts
    .filter((m) => m.v2)
    .map((m) => `${m.mountPoint} (controllers: ${readFileSync(path.join(m.mountPoint, 'cgroup.controllers'), 'utf8').trim() || 'none'})`);
  return (
    `/sys/fs/cgroup is ${v2 ? 'cgroup2 without the memory controller' : 'not a cgroup2 mount (a v1 or hybrid host)'}` +
    `${elsewhere.length ? `; cgroup2 is mounted at ${elsewhere.join(', ')}` : ''}. The memory controller belongs to one hierarchy at a time: run this as root on a` +
    ' host booted with the unified hierarchy (systemd.unified_cgroup_hierarchy=1, the default since systemd 247)'
  );
}

/** A child of /sys/fs/cgroup (cgroup2) with memory.max set; removed when the test ends. */
async function v2Child(t: TestContext): Promise<string> {
  const dir = `/sys/fs/cgroup/relonix-test-${process.pid}`;
  await fs.mkdir(dir);
  t.after(() => fs.rmdir(dir));
  const subtree = readFileSync('/sys/fs/cgroup/cgroup.subtree_control', 'utf8');
  if (!subtree.split(/\s+/).includes('memory')) await fs.writeFile('/sys/fs/cgroup/cgroup.subtree_control', '+memory');
  await fs.writeFile(path.join(dir, 'memory.max'), String(LIMIT));
  return dir;
}

test('a real cgroup with a memory limit, v2 where the memory controller is there, else v1: relonix reads it and sizes max-jobs x cores by it', async (t) => {
  requireRoot('it makes a cgroup');
  const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const v1 = mounts.find((m) => !m.v2 && m.controllers.includes('memory'));
  let dir: string;
  if (v1) {
    const mine = parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8')).find((m) => m.controllers.includes('memory'))!;
    const parent = cgroupChain(v1, mine.path)[0]!;
    assert.ok(existsSync(parent), parent);
    dir = path.join(parent, `relonix-test-${process.pid}`);
    await fs.mkdir(dir);
    t.after(() => fs.rmdir(dir));
    await fs.writeFile(path.join(dir, 'memory.limit_in_bytes'), String(LIMIT));
  } else {
    const why = noV2Memory();
    if (why) throw new Error(`this machine has no memory controller to make a cgroup with: ${why}`);
    dir = await v2Child(t);
  }
  const p = statusInside(path.join(dir, 'cgroup.procs'));
  expectSized(p);
  assert.ok(p.cgroups.includes(dir), `relonix read ${dir}: ${p.cgroups.join(', ')}`);
});
