// The cgroup reading on fake cgroup trees laid out as the kernel shows them (v2, v1, a hybrid host
// and a container that sees only its own sub-tree), and what cores and max-jobs come of it.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { cgroupChain, parseCpuMax, parseMemoryLimit, parseMountInfo, parseProcCgroup, readCgroupLimits } from '../../src/host/cgroup.ts';
import { planParallelism, RESERVED_BYTES, SLOT_BYTES, userSettings } from '../../src/host/parallelism.ts';
import { mergeNixConf, nixConfBlock, userConfLines } from '../../src/prefix/nix-conf.ts';

const GiB = 2 ** 30;
const UNLIMITED_V1 = '9223372036854771712';

/** Writes `files` (path relative to the fake root → content) under a fresh directory. */
async function fakeRoot(files: Record<string, string>): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-cgroup-'));
  for (const [rel, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await fs.writeFile(path.join(root, rel), text);
  }
  return root;
}

const V2_MOUNT = '30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n';

test('cgroup v2: cpu.max and memory.max of the process cgroup and its ancestors, the tightest winning', async () => {
  const root = await fakeRoot({
    'proc/self/cgroup': '0::/user.slice/build.scope\n',
    'proc/self/mountinfo': `22 1 8:1 / / rw - ext4 /dev/sda1 rw\n${V2_MOUNT}`,
    'sys/fs/cgroup/cpu.max': 'max 100000\n',
    'sys/fs/cgroup/user.slice/cpu.max': '300000 100000\n',
    'sys/fs/cgroup/user.slice/memory.max': `${8 * GiB}\n`,
    'sys/fs/cgroup/user.slice/build.scope/cpu.max': 'max 100000\n',
    'sys/fs/cgroup/user.slice/build.scope/memory.max': `${3 * GiB}\n`,
  });
  const l = await readCgroupLimits(root);
  assert.equal(l.cpuQuota, 3);
  assert.equal(l.memoryBytes, 3 * GiB);
  assert.deepEqual(l.read, [path.join(root, 'sys/fs/cgroup/user.slice/build.scope')]);
  await fs.rm(root, { recursive: true });
});

test('cgroup v2 with no limits anywhere: none', async () => {
  const root = await fakeRoot({
    'proc/self/cgroup': '0::/\n',
    'proc/self/mountinfo': V2_MOUNT,
    'sys/fs/cgroup/cpu.max': 'max 100000\n',
    'sys/fs/cgroup/memory.max': 'max\n',
  });
  const l = await readCgroupLimits(root);
  assert.equal(l.cpuQuota, undefined);
  assert.equal(l.memoryBytes, undefined);
  await fs.rm(root, { recursive: true });
});

test('cgroup v1: cfs quota over period and memory.limit_in_bytes, each from its own hierarchy; "unlimited" is none', async () => {
  const root = await fakeRoot({
    'proc/self/cgroup': '11:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n2:pids:/docker/abc\n1:name=systemd:/docker/abc\n',
    'proc/self/mountinfo': [
      '40 30 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct',
      '41 30 0:36 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory',
      '42 30 0:37 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids',
      '',
    ].join('\n'),
    'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
    'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    'sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '150000\n',
    'sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
    'sys/fs/cgroup/memory/memory.limit_in_bytes': `${UNLIMITED_V1}\n`,
    'sys/fs/cgroup/memory/docker/memory.limit_in_bytes': `${6 * GiB}\n`,
    'sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes': `${UNLIMITED_V1}\n`,
  });
  const l = await readCgroupLimits(root);
  assert.equal(l.cpuQuota, 1.5);
  assert.equal(l.memoryBytes, 6 * GiB, "the parent's limit binds a child that has none of its own");
  await fs.rm(root, { recursive: true });
});

test('a hybrid host: the memory limit from v1 while cgroup2 is mounted beside it without the memory controller', async () => {
  const root = await fakeRoot({
    'proc/self/cgroup': '4:memory:/process_api/x\n1:cpu:/\n0::/\n',
    'proc/self/mountinfo': [
      '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
      '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
      '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
      '',
    ].join('\n'),
    'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n',
    'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
    'sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes': `${2 * GiB}\n`,
    'sys/fs/cgroup/unified/cgroup.controllers': 'hugetlb\n',
  });
  const l = await readCgroupLimits(root);
  assert.equal(l.cpuQuota, undefined);
  assert.equal(l.memoryBytes, 2 * GiB);
  await fs.rm(root, { recursive: true });
});

test('a container that sees only its own sub-tree: the mount root is its cgroup, the mount point is read', async () => {
  const root = await fakeRoot({
    'proc/self/cgroup': '0::/kubepods/pod1/c1\n',
    'proc/self/mountinfo': '30 23 0:26 /kubepods/pod1/c1 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n',
    'sys/fs/cgroup/cpu.max': '50000 100000\n',
    'sys/fs/cgroup/memory.max': `${512 * 2 ** 20}\n`,
  });
  const l = await readCgroupLimits(root);
  assert.equal(l.cpuQuota, 0.5);
  assert.equal(l.memoryBytes, 512 * 2 ** 20);
  await fs.rm(root, { recursive: true });
});

test('no cgroup files at all (no /proc): no limits, no crash', async () => {
  const root = await fakeRoot({ 'etc/hostname': 'x\n' });
  assert.deepEqual(await readCgroupLimits(root), { read: [] });
  await fs.rm(root, { recursive: true });
});

test('parsers: /proc/self/cgroup, mountinfo escapes, the ancestor chain, cpu.max and memory limits', () => {
  assert.deepEqual(parseProcCgroup('4:cpu,cpuacct:/a\n0::/b\n1:name=systemd:/c\n'), [
    { controllers: ['cpu', 'cpuacct'], path: '/a', v2: false },
    { controllers: [], path: '/b', v2: true },
    { controllers: ['name=systemd'], path: '/c', v2: false },
  ]);
  const [m] = parseMountInfo('50 30 0:40 / /mnt/cg\\040root rw - cgroup2 none rw\n');
  assert.deepEqual(m, { root: '/', mountPoint: '/mnt/cg root', v2: true, controllers: [] });
  assert.deepEqual(cgroupChain({ root: '/', mountPoint: '/sys/fs/cgroup', v2: true, controllers: [] }, '/a/b'), [
    '/sys/fs/cgroup/a/b',
    '/sys/fs/cgroup/a',
    '/sys/fs/cgroup',
  ]);
  assert.deepEqual(cgroupChain({ root: '/x', mountPoint: '/sys/fs/cgroup', v2: true, controllers: [] }, '/elsewhere'), ['/sys/fs/cgroup']);
  assert.equal(parseCpuMax('max 100000'), undefined);
  assert.equal(parseCpuMax('250000 100000\n'), 2.5);
  assert.equal(parseMemoryLimit('max\n'), undefined);
  assert.equal(parseMemoryLimit(UNLIMITED_V1), undefined);
  assert.equal(parseMemoryLimit('1073741824\n'), GiB);
});

test('parallelism: the affinity mask and quota bound the CPUs, memory bounds the slots, max-jobs x cores stays within them', () => {
  assert.deepEqual(planParallelism({}, 2), { cores: 2, maxJobs: 1, cpus: 2, memoryBytes: undefined });
  assert.deepEqual(planParallelism({}, 16), { cores: 4, maxJobs: 4, cpus: 16, memoryBytes: undefined });
  // a quota of 1.5 CPUs on a 64-core machine
  assert.equal(planParallelism({ cpuQuota: 1.5 }, 64).cpus, 2);
  assert.equal(planParallelism({ cpuQuota: 0.2 }, 64).cpus, 1);
  // 16 CPUs but 4.5 GiB: 4 slots of SLOT_BYTES once the reserve is kept
  const tight = planParallelism({ memoryBytes: RESERVED_BYTES + 4 * SLOT_BYTES + 1 }, 16);
  assert.equal(tight.maxJobs * tight.cores, 4);
  assert.deepEqual([tight.maxJobs, tight.cores], [2, 2]);
  // less memory than one slot still builds, one thing at a time
  assert.deepEqual(planParallelism({ memoryBytes: 256 * 2 ** 20 }, 8), { cores: 1, maxJobs: 1, cpus: 8, memoryBytes: 256 * 2 ** 20 });
  for (const cpus of [1, 2, 3, 5, 8, 12, 64]) {
    const p = planParallelism({}, cpus);
    assert.ok(p.maxJobs * p.cores <= cpus && p.maxJobs >= 1 && p.cores >= 1, `${cpus} CPUs: ${p.maxJobs} x ${p.cores}`);
  }
});

test("the user's settings win: nix-build flags, --option, nix.conf outside the managed block, NIX_CONFIG", () => {
  const none = userSettings(['-A', 'hello', 'default.nix']);
  assert.deepEqual(none, { maxJobs: false, cores: false, postBuildHook: undefined, args: ['-A', 'hello', 'default.nix'] });
  assert.equal(userSettings(['-j', '3']).maxJobs, true);
  assert.equal(userSettings(['-j3']).maxJobs, true);
  assert.equal(userSettings(['--max-jobs', '3']).maxJobs, true);
  assert.equal(userSettings(['--cores', '1']).cores, true);
  assert.deepEqual(userSettings(['--option', 'cores', '1', '--option', 'max-jobs', '2']), {
    maxJobs: true,
    cores: true,
    postBuildHook: undefined,
    args: ['--option', 'cores', '1', '--option', 'max-jobs', '2'],
  });
  // their hook is taken out of the arguments: relonix's hook runs it after queueing
  const hooked = userSettings(['--option', 'post-build-hook', '/bin/mine', 'x.nix']);
  assert.deepEqual([hooked.postBuildHook, hooked.args], ['/bin/mine', ['x.nix']]);
  // what relonix wrote in its managed block is not the user's
  const conf = mergeNixConf('cores = 3\n', nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal', parallelism: { cores: 2, maxJobs: 1 } }));
  const fromConf = userSettings([], userConfLines(conf));
  assert.deepEqual([fromConf.cores, fromConf.maxJobs], [true, false]);
  const onlyBlock = userSettings([], userConfLines(nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal', parallelism: { cores: 2, maxJobs: 1 } })));
  assert.deepEqual([onlyBlock.cores, onlyBlock.maxJobs], [false, false]);
  assert.equal(userSettings([], '', 'max-jobs = 5\npost-build-hook = /x/hook').maxJobs, true);
  assert.equal(userSettings([], '# max-jobs = 5\n').maxJobs, false, 'a comment is no setting');
});

test('the managed block carries cores and max-jobs when they are passed in, and nothing of them otherwise', () => {
  const block = nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal', parallelism: { cores: 3, maxJobs: 2 } });
  assert.match(block, /^cores = 3$/m);
  assert.match(block, /^max-jobs = 2$/m);
  assert.doesNotMatch(nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal' }), /cores|max-jobs/);
});
