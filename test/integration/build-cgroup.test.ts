// The cgroup reading against the kernel's own files: a child cgroup with a memory limit is made
// (as root, test/helpers/cgroup.ts: in the cgroup2 tree where it has the memory controller, else in
// the v1 hierarchy that holds it), relonix is moved into it before it starts, and `relonix status`
// must see the limit and size max-jobs x cores by it. No memory controller at all fails, saying why.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RESERVED_BYTES, SLOT_BYTES } from '../../src/host/parallelism.ts';
import { joinCgroups, makeCgroups } from '../helpers/cgroup.ts';
import { relonixAs } from '../helpers/cli.ts';
import { requireRoot } from '../helpers/tools.ts';

const LIMIT = 3 * 2 ** 30;

test('a real cgroup with a memory limit, v2 where the memory controller is there, else v1: relonix reads it and sizes max-jobs x cores by it', async (t) => {
  requireRoot('it makes a cgroup');
  const cg = await makeCgroups(t, { memoryBytes: LIMIT });
  // the shell joins the cgroup, then becomes relonix: the limit holds from relonix's first instruction
  const r = await relonixAs(['status', '--json', '--prefix', '/nonexistent/relonix-cgroup-test'], { setup: joinCgroups(cg) });
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout).buildParallelism as { memoryBytes?: number; maxJobs: number; cores: number; cgroups: string[] };
  assert.equal(p.memoryBytes, LIMIT, 'the limit of the cgroup relonix runs in');
  const slots = Math.floor((LIMIT - RESERVED_BYTES) / SLOT_BYTES);
  assert.ok(p.maxJobs * p.cores <= slots, `max-jobs ${p.maxJobs} x cores ${p.cores} fits ${slots} slots`);
  for (const dir of cg.dirs) assert.ok(p.cgroups.includes(dir), `relonix read ${dir}: ${p.cgroups.join(', ')}`);
});
