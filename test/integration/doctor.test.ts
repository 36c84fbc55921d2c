// relonix doctor against the real conditions it reports, each made for the test: a seccomp filter
// answering EPERM (a small C program installs it, then runs relonix with a node linked to Debian
// 11's glibc 2.31, which never calls clone3, as on an older host), noexec, read-only and small
// tmpfs mounts, a cgroup with a CPU quota, a memory limit and a cpuset, subreapers that reap and
// that never do, an old kernel release (setarch --uname-2.6), no passwd entry (uid 4242), and a
// bootstrapped prefix whose Nix verifies, or fails to under the filter.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { decodeAnswers, NEWER_SYSCALLS, probeProgram } from '../../src/host/syscalls.ts';
import { joinCgroups, makeCgroups } from '../helpers/cgroup.ts';
import { EXIT, events, NOBODY_UID, type RelonixEvent, type RunAs, type RunResult, relonixAs } from '../helpers/cli.ts';
import { debianPackages } from '../helpers/debian.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixFor, REPO, removePrefix } from '../helpers/paths.ts';
import { gcc, requireRoot, requireTool, run } from '../helpers/tools.ts';

requireTool('gcc', 'gcc');
requireTool('patchelf', 'patchelf');
requireTool('setarch', 'util-linux');

// Installs a filter that answers EPERM to clone3, close_range, faccessat2 and fchmodat2 (as
// locked-down container profiles did), then execs its arguments: everything below inherits it.
const SECCOMP_C = `
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
int main(int argc, char **argv) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    DENY(435), DENY(436), DENY(439), DENY(452),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { sizeof f / sizeof f[0], f };
  if (argc < 2 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) { perror("seccomp"); return 2; }
  execvp(argv[1], argv + 1);
  perror("execvp");
  return 127;
}
`;

// A subreaper running its arguments as its child. "reap" waits for every orphan as it exits (an
// init such as tini); "late" reaps each orphan 2.5 s after it exits (a PID 1 that reaps on a timer,
// as some container platforms' do); "keep" waits only for its child, as a PID 1 that never reaps,
// and clears the orphans only once its child is done.
const SUBREAPER_C = `
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 3 || prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) { perror("subreaper"); return 2; }
  int reap = strcmp(argv[1], "reap") == 0, late = strcmp(argv[1], "late") == 0, status = 0;
  pid_t kid = fork();
  if (kid == 0) { execvp(argv[2], argv + 2); perror("execvp"); _exit(127); }
  while (late) {
    siginfo_t si = { 0 };
    if (waitid(P_ALL, 0, &si, WEXITED | WNOWAIT) != 0) break;
    if (si.si_pid == kid) break;
    usleep(2500000);
    waitpid(si.si_pid, NULL, 0);
  }
  for (;;) {
    pid_t done = waitpid(reap ? -1 : kid, &status, 0);
    if (done == kid) break;
  }
  while (waitpid(-1, NULL, WNOHANG) > 0) {}
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
`;

let top: string;
let tools: string;
let prefix: string;
let seccomp: string;
let subreaper: string;
let oldNode: string;

/** A node that runs with Debian 11's glibc 2.31 (no clone3): relonix's own process survives the filter, as on an older host. */
function nodeWithOldGlibc(dir: string): string {
  const root = debianPackages('bullseye', ['libc6', 'libstdc++6', 'libgcc-s1'], path.join(dir, 'bullseye'));
  const interp = path.basename(run('patchelf', ['--print-interpreter', process.execPath]).stdout.trim());
  const multiarch = run('gcc', ['-print-multiarch']).stdout.trim();
  const node = path.join(dir, 'node');
  run('cp', [process.execPath, node]);
  const libs = [`${root}/lib/${multiarch}`, `${root}/usr/lib/${multiarch}`].join(':');
  // the loader by the host's name for it, from the multiarch dir (the /lib64 link in the package is absolute)
  const r = run('patchelf', ['--set-interpreter', `${root}/lib/${multiarch}/${path.basename(interp)}`, '--set-rpath', libs, node]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(run(node, ['-e', 'process.exit(0)']).status, 0, 'the node on glibc 2.31 runs');
  return node;
}

before(async () => {
  requireRoot('it mounts, makes cgroups and switches to uid 4242');
  prefix = await prefixFor(NOBODY_UID, 'doctor');
  top = path.dirname(prefix);
  // the programs uid 4242 runs live where it can read them
  tools = path.join(path.dirname(top), `${path.basename(top)}-tools`);
  await fs.mkdir(tools, { mode: 0o755 });
  await fs.writeFile(path.join(tools, 'seccomp.c'), SECCOMP_C);
  await fs.writeFile(path.join(tools, 'subreaper.c'), SUBREAPER_C);
  seccomp = path.join(tools, 'seccomp-eperm');
  subreaper = path.join(tools, 'subreaper');
  gcc(['-O1', '-o', seccomp, path.join(tools, 'seccomp.c')]);
  gcc(['-O1', '-o', subreaper, path.join(tools, 'subreaper.c')]);
  oldNode = nodeWithOldGlibc(tools);
  await fs.chmod(tools, 0o755);
});

after(async () => {
  if (top) await removePrefix(top);
  if (tools) await removePrefix(tools);
});

type Found = RelonixEvent & { id: string; verdict: string; summary: string; fix?: string; facts?: Record<string, unknown> };

/** `relonix doctor --json`, its findings by id, and the error event when it refused. */
async function doctor(args: string[], o: RunAs): Promise<{ r: RunResult; found: Record<string, Found>; last: RelonixEvent }> {
  const r = await relonixAs(['doctor', '--json', ...args], o);
  const evs = events(r.stdout);
  const found: Record<string, Found> = {};
  for (const e of evs) if (e.event === 'finding') found[(e as Found).id] = e as Found;
  assert.ok(Object.keys(found).length >= 14, `every probe reported:\n${r.stdout}\n${r.stderr}`);
  return { r, found, last: evs.at(-1)! };
}

function verdicts(found: Record<string, Found>): Record<string, string> {
  return Object.fromEntries(Object.values(found).map((f) => [f.id, f.verdict]));
}

test('before a bootstrap, as root and as a uid with no passwd entry: exit 0, the passwd entry told apart, every probe answered', async () => {
  const asRoot = await doctor(['--prefix', prefix], {});
  assert.equal(asRoot.r.code, EXIT.ok, asRoot.r.stderr);
  assert.equal(asRoot.last.event, 'done');
  assert.equal(asRoot.found.passwd!.verdict, 'ok');
  assert.match(asRoot.found.passwd!.summary, /uid 0 is root/);
  const asUser = await doctor(['--prefix', prefix], { uid: NOBODY_UID });
  assert.equal(asUser.r.code, EXIT.ok, asUser.r.stderr);
  const v = verdicts(asUser.found);
  assert.equal(v.passwd, 'warning');
  assert.match(asUser.found.passwd!.summary, /uid 4242 has no passwd entry/);
  assert.match(asUser.found.passwd!.fix!, /nss_wrapper/);
  for (const id of ['node', 'kernel', 'user-namespaces', 'seccomp', 'prefix-dir', 'store-dir', 'space', 'tmp', 'decoders', 'prefix'])
    assert.equal(v[id], 'ok', `${id}: ${asUser.found[id]!.summary}`);
  assert.match(asUser.found.seccomp!.summary, /no seccomp filter; clone3, faccessat2, close_range(, fchmodat2)? reach the kernel/);
  assert.match(asUser.found.prefix!.summary, /holds no bootstrap yet/);
  assert.equal(asUser.found['store-dir-length']!.verdict, 'warning', 'the default store dir is longer than /nix/store');
  // the text report says the same
  const text = await relonixAs(['doctor', '--prefix', prefix], { uid: NOBODY_UID });
  assert.equal(text.code, EXIT.ok, text.stderr);
  assert.match(text.stdout, /^warning +passwd +uid 4242 has no passwd entry/m);
  assert.match(text.stdout, /^ +fix: give the uid an entry/m);
});

test("an xz first on PATH that does not work is a warning naming it and what it printed, with the fix; the host's zstd decodes", async () => {
  const bin = path.join(top, 'broken-xz-bin');
  await fs.mkdir(bin, { recursive: true });
  await fs.writeFile(path.join(bin, 'xz'), "#!/bin/sh\necho 'xz: error while loading shared libraries: liblzma.so.5' >&2\nexit 127\n", { mode: 0o755 });
  await fs.chmod(bin, 0o755);
  const { r, found } = await doctor(['--prefix', prefix], { uid: NOBODY_UID, extraEnv: [`PATH=${bin}:/usr/bin:/bin`] });
  assert.equal(r.code, EXIT.ok, r.stderr);
  const d = found.decoders!;
  assert.equal(d.verdict, 'warning', d.summary);
  assert.match(d.summary, new RegExp(`the host's xz \\(${bin}/xz\\) does not work here \\(xz: error while loading shared libraries: liblzma\\.so\\.5\\)`));
  assert.match(d.summary, new RegExp(`zstd \\(${requireTool('zstd', 'zstd')}\\) decodes`));
  assert.equal(d.fix, `repair ${bin}/xz or take it off PATH (or set RELONIX_NO_HOST_XZ=1)`);
});

// the prefix's Nix verifies, either Nix; the 2.8 one is the file's prefix, which the tests below use
forEachNix(({ fixture, test }) => {
  const nix = mirrorFor(fixture);
  let p = '';
  after(async () => {
    if (p && p !== prefix) await removePrefix(path.dirname(p));
  });
  test('a bootstrapped prefix: its Nix verifies (a check build rebuilt), its CA bundle has certificates', async () => {
    p = fixture === '2.8' ? prefix : await prefixFor(NOBODY_UID, `doctor-${fixture}`);
    const b = await relonixAs(['bootstrap', '--prefix', p, '--url', nix.url], { uid: NOBODY_UID });
    assert.equal(b.code, EXIT.ok, b.stderr);
    const { r, found } = await doctor(['--prefix', p], { uid: NOBODY_UID });
    assert.equal(r.code, EXIT.ok, r.stderr);
    assert.equal(found.prefix!.verdict, 'ok', found.prefix!.summary);
    assert.ok(found.prefix!.summary.includes(`nix (Nix) ${nix.fx.version} verifies (store consistent, a check build rebuilt, `), found.prefix!.summary);
    assert.match(found.prefix!.summary, /a check build rebuilt, \d+ libraries all from/);
    assert.equal(found['ca-bundle']!.verdict, 'ok');
    assert.match(found['ca-bundle']!.summary, /ca-bundle\.crt \(\d+ certificates\)/);
    assert.equal(found.space!.verdict, 'ok');
  });
});

/** Every file under `dir` with its owner, mode and modification time, sorted: what a run changed shows as a difference. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of await fs.readdir(d)) {
      const p = path.join(d, name);
      const st = await fs.lstat(p);
      out.push(`${p} ${st.uid} ${(st.mode & 0o7777).toString(8)} ${st.mtimeMs}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

test('what a doctor killed mid-probe left is cleared by the next run, and only that; check.nix is left as it was', async () => {
  const dead = 2147483647; // above any pid_max: no such process
  const relonixDir = path.join(prefix, 'var', 'relonix');
  const probeDir = path.join(prefix, `.relonix-syscall-probe.${dead}.0a1b2c3d.tmp`);
  const left = [path.join(prefix, `.relonix-probe.${dead}.0a1b2c3d.tmp`), probeDir, path.join(relonixDir, `.relonix-check.nix.${dead}.0a1b2c3d.tmp`)];
  const live = path.join(prefix, `.relonix-probe.${process.pid}.0a1b2c3d.tmp`);
  await fs.mkdir(probeDir, { mode: 0o700 });
  await fs.writeFile(path.join(probeDir, 'probe'), 'a probe', { mode: 0o700 });
  for (const f of [left[0]!, left[2]!, live]) await fs.writeFile(f, 'left by a killed run');
  for (const f of [...left, path.join(probeDir, 'probe'), live]) await fs.chown(f, NOBODY_UID, NOBODY_UID);
  const checkNix = (await fs.stat(path.join(relonixDir, 'check.nix'))).mtimeMs;
  const { r, found } = await doctor(['--prefix', prefix], { uid: NOBODY_UID });
  assert.equal(r.code, EXIT.ok, r.stderr);
  assert.equal(found.prefix!.verdict, 'ok', found.prefix!.summary);
  for (const f of left) assert.ok(!existsSync(f), `${f} is gone`);
  assert.ok(existsSync(live), "a live process's temporary is left alone");
  await fs.rm(live);
  const temps = [...(await fs.readdir(prefix)), ...(await fs.readdir(relonixDir))].filter((n) => n.startsWith('.relonix-'));
  assert.deepEqual(temps, [], 'the run left none of its own');
  assert.equal((await fs.stat(path.join(relonixDir, 'check.nix'))).mtimeMs, checkNix, 'check.nix is not written again');
});

test("root on a prefix of uid 4242: none of the prefix's programs run and nothing is written into it; the owner is named", async () => {
  const before = await tree(prefix);
  const { r, found } = await doctor(['--prefix', prefix], {});
  assert.equal(r.code, EXIT.ok, `${r.stdout}\n${r.stderr}`);
  assert.deepEqual(await tree(prefix), before, 'the prefix is as it was: no check build, no probe, no file of uid 0');
  const p = found.prefix!;
  assert.equal(p.verdict, 'warning');
  assert.match(p.summary, new RegExp(`belongs to uid ${NOBODY_UID}: its Nix was not run as uid 0`));
  assert.match(p.fix!, new RegExp(`run relonix doctor as uid ${NOBODY_UID}, its owner`));
  for (const id of ['prefix-dir', 'store-dir']) {
    assert.equal(found[id]!.verdict, 'warning', found[id]!.summary);
    assert.match(found[id]!.summary, new RegExp(`belongs to uid ${NOBODY_UID}, not to this uid \\(0\\)`));
  }
});

test('a prefix that is a file, one under a dir this uid cannot enter, one whose state it cannot read: every probe answers, each is said, and none is to be removed', async () => {
  const file = path.join(top, 'notes.txt');
  await fs.writeFile(file, 'not a prefix\n');
  await fs.chown(file, NOBODY_UID, NOBODY_UID);
  await fs.mkdir(path.join(top, 'closed', 'nix'), { recursive: true });
  await fs.chmod(path.join(top, 'closed'), 0o700);
  const unreadable = path.join(top, 'unreadable', 'nix');
  await fs.mkdir(path.join(unreadable, 'var', 'relonix'), { recursive: true });
  await fs.writeFile(path.join(unreadable, 'var', 'relonix', 'state.json'), '{"version": 1, "stages": {}}\n', { mode: 0o600 });
  const cases: [string, RegExp, RegExp][] = [
    [file, /is a file, not a directory/, /holds no prefix: .*notes\.txt is not a directory/],
    [path.join(top, 'closed', 'nix'), /uid 4242 cannot reach .*closed\/nix: EACCES/, /cannot be read by this uid: .*permission denied/],
    [unreadable, /is not writable by uid 4242/, /cannot be read by this uid: .*permission denied/],
  ];
  for (const [at, place, prefixSaid] of cases) {
    const { r, found, last } = await doctor(['--prefix', at], { uid: NOBODY_UID });
    assert.equal(r.code, EXIT.preflight, `${at}: ${r.stderr}`);
    assert.equal(last.event, 'error');
    assert.equal(found['prefix-dir']!.verdict, 'problem');
    assert.match(found['prefix-dir']!.summary, place);
    assert.equal(found.prefix!.verdict, 'problem');
    assert.match(found.prefix!.summary, prefixSaid);
    assert.doesNotMatch(found.prefix!.fix!, /remove/, 'a prefix this uid cannot read is no reason to remove it');
  }
});

test('a seccomp filter answering EPERM to clone3, faccessat2, close_range and fchmodat2: a problem with the overlay as fix, and the Nix that fails under it', async () => {
  const { r, found, last } = await doctor(['--prefix', prefix], { uid: NOBODY_UID, via: [seccomp], node: oldNode });
  assert.equal(r.code, EXIT.preflight, `${r.stdout}\n${r.stderr}`);
  assert.equal(last.event, 'error');
  assert.equal(last.exitCode, EXIT.preflight);
  const s = found.seccomp!;
  assert.equal(s.verdict, 'problem');
  assert.match(s.summary, /a seccomp filter is in force \(1 filters\) that answers clone3 with EPERM, faccessat2 with EPERM, close_range with EPERM/);
  assert.match(s.summary, /Operation not permitted/);
  assert.deepEqual(s.facts!.answers, { clone3: 'EPERM', faccessat2: 'EPERM', close_range: 'EPERM', fchmodat2: 'EPERM' });
  assert.ok(s.fix!.includes(path.join(REPO, 'patches', 'restricted-host.nix')), s.fix);
  // the relocated Nix meets the filter too: it cannot start a thread
  const p = found.prefix!;
  assert.equal(p.verdict, 'problem');
  assert.match(p.summary, /does not verify: .*Operation not permitted/s);
  assert.match(p.fix!, /the problems found above \(seccomp\) are the likely cause/);
});

test('noexec, read-only and small tmpfs mounts: the prefix, the store dir, $TMPDIR and the free space, each with its verdict', async () => {
  const mnt = path.join(top, 'mnt');
  await fs.mkdir(mnt, { mode: 0o755 });
  const mount = (name: string, opts: string) => `mkdir -p ${mnt}/${name} && mount -t tmpfs -o ${opts},mode=1777 relonix-${name} ${mnt}/${name}`;
  const setup = [
    mount('noexec', 'noexec,nosuid,size=1g'),
    mount('ro', 'ro'),
    mount('small', 'size=16m'),
    mount('few', 'size=1g,nr_inodes=400'),
    mount('nosuid', 'nosuid,size=1g'),
  ].join('\n');
  const at = (name: string, extraEnv: string[] = []) => doctor(['--prefix', `${mnt}/${name}/nix`], { uid: NOBODY_UID, setup, extraEnv });

  const noexec = await at('noexec', [`TMPDIR=${mnt}/noexec`]);
  assert.equal(noexec.r.code, EXIT.preflight);
  assert.equal(noexec.found['prefix-dir']!.verdict, 'problem');
  assert.match(noexec.found['prefix-dir']!.summary, /^programs in the prefix .* cannot be executed \(it is on a noexec mount, .*mnt\/noexec \(tmpfs\)\)/);
  assert.equal(noexec.found['store-dir']!.verdict, 'problem');
  assert.equal(noexec.found.tmp!.verdict, 'warning');
  assert.match(noexec.found.tmp!.summary, /is on a noexec mount/);
  // no place lets the syscall probe run: the kernel's own word on seccomp decides
  assert.equal(noexec.found.seccomp!.verdict, 'ok');
  assert.match(noexec.found.seccomp!.summary, /no seccomp filter \(the probe could not run/);

  const ro = await at('ro');
  assert.equal(ro.r.code, EXIT.preflight);
  assert.match(ro.found['prefix-dir']!.summary, /^cannot write under the prefix .*: it is on a read-only mount/);

  const small = await at('small');
  assert.equal(small.found.space!.verdict, 'problem');
  assert.match(small.found.space!.summary, /mnt\/small \(tmpfs\) has 1[56](\.\d)? MiB free; Nix needs about 288 MiB/);

  const few = await at('few');
  assert.equal(few.found.space!.verdict, 'problem');
  assert.match(few.found.space!.summary, /has \d+ inodes free; a bootstrap creates up to 10000 files/);

  const nosuid = await at('nosuid');
  assert.equal(nosuid.found['prefix-dir']!.verdict, 'ok');
  assert.match(nosuid.found['prefix-dir']!.summary, /nosuid \(harmless/);
  assert.equal(nosuid.r.code, EXIT.ok, nosuid.r.stderr);
});

test('a cgroup with a CPU quota of 1.5, a memory limit of 1 GiB and a cpuset of one CPU: read, and max-jobs and cores sized by them', async (t) => {
  const cg = await makeCgroups(t, { cpuQuota: 1.5, memoryBytes: 2 ** 30, cpus: '0' });
  const { r, found } = await doctor(['--prefix', prefix], { uid: NOBODY_UID, setup: joinCgroups(cg) });
  assert.equal(r.code, EXIT.ok, r.stderr);
  const c = found.cgroup!;
  assert.equal(c.verdict, 'warning');
  assert.match(c.summary, /CPU quota 1\.5 CPUs, memory limit 1\.0 GiB, cpuset 0 \(1 of \d+ CPUs\), affinity 1 CPUs: builds get max-jobs 1, cores 1/);
  assert.match(c.summary, /the memory limit leaves less than 1\.0 GiB/);
  assert.deepEqual(c.facts!.cpuset, { list: '0', count: 1 });
  for (const dir of cg.dirs) assert.ok((c.facts!.cgroups as string[]).includes(dir), `${dir} was read`);
});

test('orphans under a subreaper that never reaps stay zombies (a warning naming it); under one that reaps, at once or seconds later, ok', async () => {
  const keep = await doctor(['--prefix', prefix], { uid: NOBODY_UID, via: [subreaper, 'keep'] });
  assert.equal(keep.found.reaper!.verdict, 'warning');
  assert.match(keep.found.reaper!.summary, /orphans go to subreaper \(pid \d+\), which never waits for them/);
  const reap = await doctor(['--prefix', prefix], { uid: NOBODY_UID, via: [subreaper, 'reap'] });
  assert.equal(reap.found.reaper!.verdict, 'ok');
  assert.match(reap.found.reaper!.summary, /orphans are reaped by subreaper \(pid \d+\)/);
  const late = await doctor(['--prefix', prefix], { uid: NOBODY_UID, via: [subreaper, 'late'] });
  assert.equal(late.found.reaper!.verdict, 'ok', 'an init that reaps seconds later does reap');
  assert.match(late.found.reaper!.summary, /orphans are reaped by subreaper \(pid \d+\)/);
});

test('the aarch64 syscall probe, run by qemu-aarch64: every answer decodes, and none is a refusal', async () => {
  const qemu = requireTool('qemu-aarch64-static');
  const file = path.join(tools, 'probe-aarch64');
  await fs.writeFile(file, probeProgram('arm64')!, { mode: 0o755 });
  const out = execFileSync(qemu, [file]);
  const answers = decodeAnswers(out);
  assert.ok(answers, `40 bytes of answers, got ${out.length}`);
  // qemu answers ENOSYS for the calls it does not emulate; whatever it runs reaches the kernel
  assert.deepEqual(
    answers.newer.map((a) => [a.name, a.verdict === 'refused' ? `refused ${a.errno}` : 'answered']),
    NEWER_SYSCALLS.map((n) => [n, 'answered']),
  );
  assert.equal(answers.newer.find((a) => a.name === 'faccessat2')!.verdict, 'reached', 'faccessat2 ran: the code and its "/" string are right');
});

test('a kernel that reports 2.6 (setarch --uname-2.6, the personality old programs ran under): older than any glibc Nix runs on, a problem', async () => {
  const { r, found } = await doctor(['--prefix', prefix], { uid: NOBODY_UID, via: ['setarch', process.arch === 'x64' ? 'x86_64' : 'aarch64', '--uname-2.6'] });
  assert.equal(r.code, EXIT.preflight);
  assert.equal(found.kernel!.verdict, 'problem');
  assert.match(found.kernel!.summary, /^Linux 2\.6\.\d+\S* is older than 3\.2, the oldest glibc \(and so Nix\) runs on/);
});
