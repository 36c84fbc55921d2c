// relonix doctor's pure half: the syscall probe's program and answers, mountinfo, and each
// judgement from facts to ok / warning / problem with its fix.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PREFIX, STORE_DIR } from '../../src/bootstrap/place-problems.ts';
import type { PlaceFacts } from '../../src/doctor/facts.ts';
import { judgePlace, judgeSpace, judgeStoreDirLength, judgeTmp } from '../../src/doctor/judge-disk.ts';
import { judgeCgroup, judgeDecoders, judgeKernel, judgePasswd, judgeReaper, judgeSeccomp, judgeUserNamespaces } from '../../src/doctor/judge-host.ts';
import { judgeCaBundle, judgePrefix } from '../../src/doctor/prefix.ts';
import { parseElf } from '../../src/elf/index.ts';
import { classLayout, readEhdr } from '../../src/elf/layout.ts';
import { parseCpuList } from '../../src/host/cgroup.ts';
import { mountFlags, mountOf, parseMounts } from '../../src/host/mounts.ts';
import { decodeAnswers, parseSeccompStatus, probeProgram, type SyscallAnswers } from '../../src/host/syscalls.ts';
import { layout } from '../../src/prefix/layout.ts';

/** The probe's output for these five results (negative errnos, as the kernel returns them). */
function out(...results: number[]): Buffer {
  const b = Buffer.alloc(results.length * 8);
  for (const [i, r] of results.entries()) b.writeBigInt64LE(BigInt(r), i * 8);
  return b;
}

test('the syscall probe: a static ELF of one loadable segment for x86_64 and aarch64, none elsewhere', () => {
  for (const [arch, machine] of [
    ['x64', 62],
    ['arm64', 183],
  ] as const) {
    const buf = probeProgram(arch)!;
    const elf = parseElf(buf);
    assert.equal(elf.machine, machine);
    assert.equal(elf.phdrs.length, 1);
    const [load] = elf.phdrs;
    assert.equal(load!.type, 1);
    assert.equal(load!.flags, 5, 'read and execute, not writable');
    assert.equal(load!.filesz, buf.length, 'the segment is the whole file');
    const l = classLayout(true, true);
    assert.equal(readEhdr(l, l.io(buf)).entry, load!.vaddr + 64 + 56, 'the code follows the header and the one program header');
  }
  assert.equal(probeProgram('s390x'), undefined);
});

test('the probe answers: reached, missing (ENOSYS: glibc falls back) or refused, and unshare(CLONE_NEWUSER)', () => {
  const normal = decodeAnswers(out(-22, 0, 0, -22, 0))!;
  assert.deepEqual(
    normal.newer.map((a) => a.verdict),
    ['reached', 'reached', 'reached', 'reached'],
  );
  assert.equal(normal.userns, 0);
  const old = decodeAnswers(out(-38, -38, -38, -38, -1))!;
  assert.deepEqual(
    old.newer.map((a) => a.verdict),
    ['missing', 'missing', 'missing', 'missing'],
  );
  assert.equal(old.userns, 1);
  const filtered = decodeAnswers(out(-1, -1, 0, -13, -28))!;
  assert.deepEqual(
    filtered.newer.map((a) => [a.name, a.verdict, a.errno]),
    [
      ['clone3', 'refused', 1],
      ['faccessat2', 'refused', 1],
      ['close_range', 'reached', 0],
      ['fchmodat2', 'refused', 13],
    ],
  );
  assert.equal(decodeAnswers(Buffer.alloc(39)), undefined, 'a short answer is no answer');
  assert.deepEqual(parseSeccompStatus('Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t3\n'), { mode: 2, filters: 3 });
  assert.deepEqual(parseSeccompStatus('Name:\tx\n'), { mode: undefined, filters: undefined });
});

const answers = (a: SyscallAnswers) => ({ ran: true as const, answers: a });

test('seccomp: EPERM is a problem naming each call, what it breaks and the overlay; ENOSYS is fine; a kill is a problem; no probe falls back to the kernel word', () => {
  const overlay = '/pkg/patches/restricted-host.nix';
  const refused = judgeSeccomp({ syscalls: answers(decodeAnswers(out(-1, -1, -1, -38, 0))!), seccomp: { mode: 2, filters: 1 }, overlay });
  assert.equal(refused.verdict, 'problem');
  assert.match(refused.summary, /answers clone3 with EPERM, faccessat2 with EPERM, close_range with EPERM where glibc needs ENOSYS/);
  assert.match(refused.summary, /no new thread starts/);
  assert.ok(refused.fix!.includes(`(import ${overlay})`), refused.fix);
  assert.deepEqual(refused.facts!.answers, { clone3: 'EPERM', faccessat2: 'EPERM', close_range: 'EPERM', fchmodat2: 'ENOSYS' });
  const old = judgeSeccomp({ syscalls: answers(decodeAnswers(out(-38, 0, -38, -38, 0))!), seccomp: { mode: 2, filters: 1 } });
  assert.equal(old.verdict, 'ok');
  assert.match(old.summary, /faccessat2 reach the kernel; clone3, close_range, fchmodat2 answer ENOSYS/);
  assert.equal(judgeSeccomp({ syscalls: { ran: true, killedBy: 'SIGSYS' }, seccomp: { mode: 2 } }).verdict, 'problem');
  assert.equal(judgeSeccomp({ syscalls: { ran: false, why: 'noexec' }, seccomp: { mode: 0 } }).verdict, 'ok');
  const unknown = judgeSeccomp({ syscalls: { ran: false, why: 'no probe for s390x' }, seccomp: { mode: 2, filters: 2 } });
  assert.equal(unknown.verdict, 'warning');
  assert.match(unknown.fix!, /patches\/restricted-host\.nix \(in the relonix npm package/, 'without the folder, where to find it');
});

test('user namespaces are only ever informational', () => {
  assert.match(judgeUserNamespaces({ syscalls: answers(decodeAnswers(out(-22, 0, 0, -22, 0))!), usernsSysctl: {} }).summary, /^available/);
  const no = judgeUserNamespaces({ syscalls: answers(decodeAnswers(out(-22, 0, 0, -22, -1))!), usernsSysctl: {} });
  assert.equal(no.verdict, 'ok');
  assert.match(no.summary, /fails with EPERM \(relonix needs none/);
  assert.match(judgeUserNamespaces({ syscalls: { ran: false, why: 'x' }, usernsSysctl: { max: 0 } }).summary, /max_user_namespaces is 0/);
});

test('mountinfo: the mount that holds a path is the longest (and last) match, with ro from either option list', () => {
  const mounts = parseMounts(
    [
      '22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw',
      '30 22 0:30 / /tmp rw,nosuid,nodev,noexec - tmpfs tmpfs rw,size=1g',
      '31 22 0:31 / /tmp/nix\\040x rw - tmpfs tmpfs ro',
      '32 30 0:32 / /tmp rw - tmpfs tmpfs rw',
      'garbage',
    ].join('\n'),
  );
  assert.equal(mounts.length, 4);
  assert.deepEqual(mountFlags(mountOf(mounts, '/tmp/nix x/store')!), {
    mountPoint: '/tmp/nix x',
    fsType: 'tmpfs',
    readOnly: true,
    noexec: false,
    nosuid: false,
  });
  assert.equal(mountOf(mounts, '/tmp/nixy')!.mountPoint, '/tmp', 'a path that only starts with a mount point is not under it');
  assert.equal(mountFlags(mountOf(mounts, '/tmp/a')!).noexec, false, 'the later mount over /tmp hides the first');
  assert.equal(mountOf(mounts, '/home')!.mountPoint, '/');
});

const place = (over: Partial<PlaceFacts> = {}): PlaceFacts => ({
  dir: '/p/nix',
  exists: false,
  at: '/p',
  real: '/p',
  mount: { mountPoint: '/', fsType: 'ext4', readOnly: false, noexec: false, nosuid: false },
  tried: { real: '/p', writable: true, executable: true },
  space: { freeBytes: 10 * 2 ** 30, freeInodes: 100_000, fsType: 'ext4' },
  dev: 1,
  ...over,
});

test('the prefix and store dir places: a path Nix cannot use, symlink, read-only, unwritable, noexec are problems worded as preflight words them; nosuid is noted', () => {
  assert.equal(judgePlace('prefix-dir', PREFIX, place()).verdict, 'ok');
  const link = judgePlace('prefix-dir', PREFIX, place({ real: '/private/p' }));
  assert.equal(link.verdict, 'problem');
  assert.equal(link.fix, 'pass --prefix /private/p/nix');
  const ro = judgePlace('store-dir', STORE_DIR, place({ mount: { mountPoint: '/p', fsType: 'tmpfs', readOnly: true, noexec: false, nosuid: false } }));
  assert.match(ro.summary, /^cannot write in the store dir \/p\/nix \(not made yet; \/p exists\): it is on a read-only mount, \/p \(tmpfs\)/);
  assert.match(ro.fix!, /--store-dir \/tmp\/store/);
  const denied = judgePlace('prefix-dir', PREFIX, place({ tried: { real: '/p', writable: false, writeError: 'EACCES', executable: false } }));
  assert.match(denied.summary, /^cannot write under the prefix .*: EACCES/);
  const noexec = judgePlace('prefix-dir', PREFIX, place({ tried: { real: '/p', writable: true, executable: false, execError: 'EACCES' } }));
  assert.match(noexec.summary, /cannot be executed \(EACCES\)/);
  assert.match(noexec.fix!, /noexec/);
  // a path Nix cannot live at, as bootstrap refuses it
  const colon = judgePlace('prefix-dir', PREFIX, place({ dir: '/p/a:b/nix' }));
  assert.equal(colon.verdict, 'problem');
  assert.match(colon.summary, /the prefix "\/p\/a:b\/nix" has a colon/);
  assert.match(colon.fix!, /--prefix/);
  const nosuid = judgePlace('prefix-dir', PREFIX, place({ mount: { mountPoint: '/', fsType: 'ext4', readOnly: false, noexec: false, nosuid: true } }));
  assert.equal(nosuid.verdict, 'ok');
  assert.match(nosuid.summary, /nosuid \(harmless/);
  const theirs = judgePlace('prefix-dir', PREFIX, place({ exists: true, at: '/p/nix', real: '/p/nix', foreign: { owner: 1000, me: 0 } }));
  assert.equal(theirs.verdict, 'warning');
  assert.match(theirs.summary, /^the prefix \/p\/nix belongs to uid 1000, not to this uid \(0\): .*so nothing was run there$/);
  assert.equal(theirs.fix, 'run relonix doctor, and every relonix command for it, as uid 1000, its owner');
});

test('space: what a bootstrap needs before one, room for builds after; $TMPDIR; the store dir length', () => {
  assert.equal(judgeSpace(place(), false).verdict, 'ok');
  assert.equal(judgeSpace(place({ space: { freeBytes: 100 * 2 ** 20, freeInodes: 100_000, fsType: 'tmpfs' } }), false).verdict, 'problem');
  assert.equal(judgeSpace(place({ space: { freeBytes: 100 * 2 ** 20, freeInodes: 100_000, fsType: 'tmpfs' } }), true).verdict, 'warning');
  assert.equal(judgeSpace(place({ space: { freeBytes: 2 ** 33, freeInodes: 50, fsType: 'ext4' } }), false).verdict, 'problem');
  assert.equal(judgeSpace(place({ space: { freeBytes: 2 ** 33, fsType: 'btrfs' } }), false).verdict, 'ok', 'no inode count: bytes decide');
  const tmp = (over: Partial<PlaceFacts>) => place({ dir: '/tmp', exists: true, at: '/tmp', real: '/tmp', dev: 2, ...over });
  assert.equal(judgeTmp(tmp({}), place()).verdict, 'ok');
  const small = judgeTmp(tmp({ space: { freeBytes: 64 * 2 ** 20, fsType: 'tmpfs' } }), place());
  assert.equal(small.verdict, 'warning');
  assert.match(small.summary, /less than a bootstrap needs/);
  assert.match(judgeTmp(tmp({ dev: 1, space: { freeBytes: 64 * 2 ** 20, fsType: 'tmpfs' } }), place()).summary, /on the prefix's filesystem \(see space\)/);
  assert.match(
    judgeTmp(tmp({ mount: { mountPoint: '/tmp', fsType: 'tmpfs', readOnly: false, noexec: true, nosuid: true } }), place()).fix!,
    /^export TMPDIR=\/p\/nix\/tmp/,
  );
  assert.equal(judgeStoreDirLength('/tmp/store').verdict, 'ok');
  assert.equal(judgeStoreDirLength('/tmp/nix/store').verdict, 'warning');
});

test('cgroup: the numbers and the parallelism they give; a small memory limit and a narrow cpuset are warnings', () => {
  const base = { cgroup: { read: ['/sys/fs/cgroup'] }, affinity: 8, machineCpus: 8 };
  const free = judgeCgroup(base);
  assert.equal(free.verdict, 'ok');
  assert.match(free.summary, /CPU quota none, memory limit none, cpuset none, affinity 8 CPUs: builds get max-jobs 3, cores 2/);
  const tight = judgeCgroup({ ...base, cgroup: { cpuQuota: 2, memoryBytes: 2 ** 30, cpuset: { list: '0-3', count: 4 }, read: [] } });
  assert.equal(tight.verdict, 'warning');
  assert.match(tight.summary, /CPU quota 2 CPUs, memory limit 1\.0 GiB, cpuset 0-3 \(4 of 8 CPUs\)/);
  assert.match(tight.summary, /memory limit leaves less than 1\.0 GiB.*cpuset is narrower than the machine/);
  assert.deepEqual(parseCpuList('0-3,6\n'), { list: '0-3,6', count: 5 });
  assert.equal(parseCpuList(''), undefined);
  assert.equal(parseCpuList('x'), undefined);
});

test('reaper, kernel, passwd: each verdict and its fix', () => {
  const keeps = judgeReaper({ reaper: { known: true, reaped: false, reaper: { pid: 1, name: 'app' }, zombies: 3 } });
  assert.equal(keeps.verdict, 'warning');
  assert.match(keeps.summary, /orphans go to app \(pid 1\), which never waits for them \(3 zombies already\)/);
  assert.match(keeps.fix!, /docker run --init/);
  assert.equal(judgeReaper({ reaper: { known: true, reaped: true, reaper: { pid: 1, name: 'tini' }, zombies: 0 } }).verdict, 'ok');
  assert.equal(judgeReaper({ reaper: { known: false, why: 'no /proc' } }).verdict, 'warning');
  assert.match(judgeKernel({ kernel: '4.18.0-513.el8.x86_64' }).summary, /\(before 5\.18\) tells a program where its program headers are by e_phoff/);
  assert.equal(judgeKernel({ kernel: '2.6.32-754.el6.x86_64' }).verdict, 'problem');
  assert.equal(judgeKernel({ kernel: '6.1.0-18-amd64' }).verdict, 'ok');
  assert.equal(judgeKernel({ kernel: 'weird' }).verdict, 'warning');
  assert.equal(judgePasswd({ uid: 1000, userName: 'u' }).verdict, 'ok');
  const none = judgePasswd({ uid: 4242 });
  assert.equal(none.verdict, 'warning');
  assert.match(none.fix!, /useradd -u 4242/);
});

test('decoders: working, missing and hidden programs are fine; one that does not work is a warning naming it, with its words and the fix', () => {
  const works = (program: string) => ({ program, hidden: false, works: true });
  const fine = judgeDecoders({ decoders: { xz: works('/usr/bin/xz'), zstd: works('/usr/bin/zstd') } });
  assert.equal(fine.verdict, 'ok');
  assert.equal(fine.summary, 'xz (/usr/bin/xz) decodes; zstd (/usr/bin/zstd) decodes');
  const missing = judgeDecoders({ decoders: { xz: works('/bin/xz'), zstd: { program: null, hidden: false } } });
  assert.equal(missing.verdict, 'ok');
  assert.match(missing.summary, /no zstd on PATH \(relonix decodes zstd itself, several times slower\)/);
  const hidden = judgeDecoders({ decoders: { xz: { program: null, hidden: true }, zstd: works('/bin/zstd') } });
  assert.equal(hidden.verdict, 'ok');
  assert.match(hidden.summary, /^xz hidden by RELONIX_NO_HOST_XZ=1/);
  const broken = { program: '/opt/bin/xz', hidden: false, works: false, printed: 'xz: error while loading shared libraries: liblzma.so.5' };
  const one = judgeDecoders({ decoders: { xz: broken, zstd: works('/bin/zstd') } });
  assert.equal(one.verdict, 'warning');
  assert.match(
    one.summary,
    /the host's xz \(\/opt\/bin\/xz\) does not work here \(xz: error while loading shared libraries: liblzma\.so\.5\), so relonix decodes xz itself/,
  );
  assert.equal(one.fix, 'repair /opt/bin/xz or take it off PATH (or set RELONIX_NO_HOST_XZ=1)');
  const both = judgeDecoders({ decoders: { xz: broken, zstd: { program: '/opt/bin/zstd', hidden: false, works: false, printed: 'it exited with 1' } } });
  assert.equal(both.fix, 'repair /opt/bin/xz and /opt/bin/zstd or take them off PATH (or set RELONIX_NO_HOST_XZ=1 RELONIX_NO_HOST_ZSTD=1)');
  // one that hangs is not passed over by what decodes with it: said so, with the same fix
  const hung = { program: '/opt/bin/zstd', hidden: false, works: false, hung: true, printed: 'it did not finish decoding the sample within 20 s' };
  const hangs = judgeDecoders({ decoders: { xz: works('/bin/xz'), zstd: hung } });
  assert.equal(hangs.verdict, 'warning');
  assert.match(
    hangs.summary,
    /the host's zstd \(\/opt\/bin\/zstd\) hangs here \(it did not finish decoding the sample within 20 s\): what relonix decodes with it waits on it$/,
  );
  assert.equal(hangs.fix, 'repair /opt/bin/zstd or take it off PATH (or set RELONIX_NO_HOST_ZSTD=1)');
});

test("the prefix: no bootstrap, a stopped one, a busy one, another uid's, one that verifies and one that does not; the CA bundle", () => {
  const l = layout('/p/nix');
  const state = { version: 1 as const, storeDir: l.storeDir, stages: {} };
  assert.match(judgePrefix(l, { state, bootstrapped: false }, []).summary, /holds no bootstrap yet: relonix bootstrap --prefix \/p\/nix makes one/);
  const stopped = judgePrefix(l, { state: { ...state, stages: { preflight: { doneAt: 'x' }, fetch: { doneAt: 'y' } } }, bootstrapped: false }, []);
  assert.equal(stopped.verdict, 'warning');
  assert.match(stopped.summary, /stopped after preflight, fetch/);
  const done = { ...state, nix: '/p/nix/store/x-nix', stages: { verify: { doneAt: 'z' } } };
  const busy = judgePrefix(l, { state: done, bootstrapped: true, holder: { pid: 7, host: 'h', since: 't', what: 'relonix build' } }, []);
  assert.match(busy.summary, /another relonix \(pid 7, relonix build, since t\) holds it/);
  const theirs = judgePrefix(l, { state: done, bootstrapped: true, foreign: { dir: '/p/nix', owner: 1000, me: 0 } }, []);
  assert.equal(theirs.verdict, 'warning');
  assert.match(theirs.summary, /\/p\/nix belongs to uid 1000: its Nix was not run as uid 0/);
  assert.equal(theirs.fix, 'run relonix doctor as uid 1000, its owner, to verify it');
  const failed = judgePrefix(l, { state: done, bootstrapped: true, verify: { ok: false, message: 'nix --version failed: Operation not permitted' } }, [
    'seccomp',
  ]);
  assert.equal(failed.verdict, 'problem');
  assert.match(failed.fix!, /\(seccomp\) are the likely cause/);
  assert.equal(judgeCaBundle({ state: done, bootstrapped: true, ca: { file: '/f', certificates: 0 } }, { ca: { nodeRoots: 140 } }).verdict, 'problem');
  assert.equal(judgeCaBundle({ state, bootstrapped: false }, { ca: { nodeRoots: 140, extra: { file: '/x.pem', readable: false } } }).verdict, 'warning');
  assert.equal(judgeCaBundle({ state, bootstrapped: false }, { ca: { nodeRoots: 140 } }).verdict, 'ok');
});
