// Pure: what the kernel, its seccomp filter, the cgroup, PID 1, the uid and node allow → findings.
import { type HostTool, hideVariable } from '../codec/host-tools.ts';
import { planParallelism, RESERVED_BYTES, SLOT_BYTES } from '../host/parallelism.ts';
import { passwdHint } from '../host/passwd.ts';
import type { NewerSyscall } from '../host/syscalls.ts';
import { size } from '../util/format.ts';
import type { HostFacts } from './facts.ts';
import { errnoName, type Finding, ok, problem, warning } from './finding.ts';

/** How the overlay is used, or where it is found when this relonix is a lone file. */
function overlayUse(overlay: string | undefined): string {
  const file = overlay ?? 'patches/restricted-host.nix (in the relonix npm package: npm pack relonix)';
  return `nix-build --arg overlays '[ (import ${file}) ]' …`;
}

/** What breaks when a filter refuses each syscall instead of answering ENOSYS. */
const BREAKS: Record<NewerSyscall, string> = {
  clone3: "no new thread starts (glibc 2.34+): Nix itself stops with 'Operation not permitted'",
  faccessat2: 'access checks with flags fail (glibc 2.33+): `test -x` answers no, configure scripts misjudge tools',
  close_range: "closing descriptors in bulk fails (glibc 2.34+ closefrom, Python's subprocess)",
  fchmodat2: 'chmod of a path without following symlinks fails (glibc 2.39+ fchmodat with AT_SYMLINK_NOFOLLOW, lchmod)',
};

export function judgeUserNamespaces(f: Pick<HostFacts, 'syscalls' | 'usernsSysctl'>): Finding {
  const not = 'relonix needs none: Nix runs with sandbox = false';
  if (f.syscalls.ran && 'answers' in f.syscalls) {
    const e = f.syscalls.answers.userns;
    const facts = { available: e === 0, errno: e };
    return ok('user-namespaces', e === 0 ? `available (${not})` : `not available: unshare(CLONE_NEWUSER) fails with ${errnoName(e)} (${not})`, facts);
  }
  const { max, unprivileged } = f.usernsSysctl;
  if (max === 0) return ok('user-namespaces', `not available: user.max_user_namespaces is 0 (${not})`, { available: false });
  if (unprivileged === 0)
    return ok('user-namespaces', `not available to unprivileged users: kernel.unprivileged_userns_clone is 0 (${not})`, { available: false });
  return ok('user-namespaces', `not probed (${not})`, { available: null });
}

export function judgeSeccomp(f: Pick<HostFacts, 'syscalls' | 'seccomp' | 'overlay'>): Finding {
  const fix =
    'run the container with a seccomp profile that answers ENOSYS to the syscalls it does not allow (the current defaults of Docker, Podman and containerd do), or unconfined; ' +
    `for packages whose test suites still trip over the host, build with the overlay: ${overlayUse(f.overlay)}`;
  const filtered = f.seccomp.mode === 2 ? `a seccomp filter is in force (${f.seccomp.filters ?? '?'} filters)` : 'no seccomp filter';
  const o = f.syscalls;
  if (o.ran && 'killedBy' in o) {
    return problem(
      'seccomp',
      `the seccomp filter kills a process that calls clone3, faccessat2, close_range or fchmodat2 (${o.killedBy}): Nix and most programs built with a recent glibc die`,
      fix,
      { killedBy: o.killedBy },
    );
  }
  if (!o.ran) {
    if (f.seccomp.mode === 0) return ok('seccomp', `no seccomp filter (${o.why})`, { mode: 0 });
    return warning(
      'seccomp',
      `${filtered}, and what it answers to newer syscalls could not be probed: ${o.why}. If Nix stops with 'Operation not permitted', it answers EPERM`,
      fix,
      { ...f.seccomp },
    );
  }
  const answers = o.answers.newer;
  const refused = answers.filter((a) => a.verdict === 'refused');
  const facts = { ...f.seccomp, answers: Object.fromEntries(answers.map((a) => [a.name, a.errno === 0 ? 'ok' : errnoName(a.errno)])) };
  if (refused.length) {
    const what = refused.map((a) => `${a.name} (${errnoName(a.errno)}: ${BREAKS[a.name]})`).join('; ');
    return problem(
      'seccomp',
      `${filtered} that answers ${refused.map((a) => `${a.name} with ${errnoName(a.errno)}`).join(', ')} where glibc needs ENOSYS to fall back: ${what}`,
      fix,
      facts,
    );
  }
  const missing = answers.filter((a) => a.verdict === 'missing').map((a) => a.name);
  const reached = answers.filter((a) => a.verdict === 'reached').map((a) => a.name);
  const parts = [
    reached.length ? `${reached.join(', ')} reach the kernel` : '',
    missing.length ? `${missing.join(', ')} answer ENOSYS (glibc falls back)` : '',
  ];
  return ok('seccomp', `${filtered}; ${parts.filter(Boolean).join('; ')}`, facts);
}

export function judgeCgroup(f: Pick<HostFacts, 'cgroup' | 'affinity' | 'machineCpus' | 'overlay'>): Finding {
  const p = planParallelism(f.cgroup, f.affinity);
  const { cpuQuota, memoryBytes, cpuset } = f.cgroup;
  const said = [
    `CPU quota ${cpuQuota === undefined ? 'none' : `${Number(cpuQuota.toFixed(2))} CPUs`}`,
    `memory limit ${memoryBytes === undefined ? 'none' : size(memoryBytes)}`,
    `cpuset ${cpuset ? `${cpuset.list} (${cpuset.count} of ${f.machineCpus} CPUs)` : 'none'}`,
    `affinity ${f.affinity} CPUs`,
  ].join(', ');
  const summary = `${said}: builds get max-jobs ${p.maxJobs}, cores ${p.cores}`;
  const facts = {
    cpuQuota: cpuQuota ?? null,
    memoryBytes: memoryBytes ?? null,
    cpuset: cpuset ?? null,
    affinity: f.affinity,
    machineCpus: f.machineCpus,
    maxJobs: p.maxJobs,
    cores: p.cores,
    cgroups: f.cgroup.read,
  };
  const costs: string[] = [];
  const fixes: string[] = [];
  if (memoryBytes !== undefined && memoryBytes < RESERVED_BYTES + SLOT_BYTES) {
    costs.push(`the memory limit leaves less than ${size(SLOT_BYTES)} for a build beside Nix`);
    fixes.push('ask for a memory limit of 2 GiB or more: large packages (compilers, linkers) are killed for memory below that');
  }
  if (cpuset && cpuset.count < f.machineCpus) {
    costs.push('the cpuset is narrower than the machine, so test suites that pin threads to other CPUs fail with EINVAL (aws-c-common)');
    fixes.push(`build such packages with the overlay: ${overlayUse(f.overlay)}`);
  }
  if (costs.length) return warning('cgroup', `${summary}; ${costs.join('; ')}`, fixes.join('; '), facts);
  return ok('cgroup', summary, facts);
}

export function judgeReaper(f: Pick<HostFacts, 'reaper'>): Finding {
  const r = f.reaper;
  if (!r.known)
    return warning(
      'reaper',
      `could not tell whether orphans are reaped: ${r.why}`,
      'run the container with an init that reaps (docker run --init, tini or dumb-init as PID 1)',
    );
  const who = `${r.reaper.name} (pid ${r.reaper.pid})`;
  const facts = { reaped: r.reaped, reaper: r.reaper, zombies: r.zombies };
  if (r.reaped) return ok('reaper', `orphans are reaped by ${who}`, facts);
  return warning(
    'reaper',
    `orphans go to ${who}, which never waits for them (${r.zombies} zombie${r.zombies === 1 ? '' : 's'} already): every process killed after its parent (a stopped build, a killed relonix) stays a zombie and keeps its pid; relonix's locks see through zombies`,
    'run the container with an init that reaps: docker run --init, tini or dumb-init as PID 1 (Kubernetes: shareProcessNamespace: true)',
    facts,
  );
}

/** Pure: `6.1.0-18-amd64` → [6, 1]. */
function kernelVersion(release: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

export function judgeKernel(f: Pick<HostFacts, 'kernel'>): Finding {
  const v = kernelVersion(f.kernel);
  const facts = { release: f.kernel };
  if (!v)
    return warning(
      'kernel',
      `the kernel release "${f.kernel}" does not read as a version`,
      'nothing to do unless Nix fails to start; then report the release',
      facts,
    );
  const older = (a: number, b: number) => v[0] < a || (v[0] === a && v[1] < b);
  if (older(3, 2)) return problem('kernel', `Linux ${f.kernel} is older than 3.2, the oldest glibc (and so Nix) runs on`, 'run on a newer kernel', facts);
  if (older(5, 18)) {
    return ok(
      'kernel',
      `Linux ${f.kernel} (before 5.18) tells a program where its program headers are by e_phoff: every program relonix edits keeps them there, and one that cannot is refused, never broken`,
      facts,
    );
  }
  return ok('kernel', `Linux ${f.kernel}; relonix still keeps every edited program's program headers where kernels before 5.18 look`, facts);
}

export function judgePasswd(f: Pick<HostFacts, 'uid' | 'userName' | 'overlay'>): Finding {
  if (f.userName) return ok('passwd', `uid ${f.uid} is ${f.userName}`, { uid: f.uid, name: f.userName });
  return warning(
    'passwd',
    `uid ${f.uid} has no passwd entry: Nix runs (relonix sets USER and HOME), but ssh to remote builders stops ("No user exists for uid ${f.uid}") and test suites that look the build user up fail (coreutils)`,
    `${passwdHint(f.uid)}; builds of such packages: ${overlayUse(f.overlay)}`,
    { uid: f.uid, name: null },
  );
}

/**
 * The host's xz and zstd: relonix decodes without them, several times slower (bootstraps, restores,
 * translations); one that is there but does not work is passed over once it fails, and said here.
 */
export function judgeDecoders(f: Pick<HostFacts, 'decoders'>): Finding {
  const tools = ['xz', 'zstd'] as const;
  const hide = (name: HostTool) => `${hideVariable(name)}=1`;
  const said = tools.map((name) => {
    const d = f.decoders[name];
    if (d.hidden) return `${name} hidden by ${hide(name)} (relonix decodes ${name} itself)`;
    if (!d.program) return `no ${name} on PATH (relonix decodes ${name} itself, several times slower)`;
    if (d.works) return `${name} (${d.program}) decodes`;
    // a program that fails gives way to relonix's decoder; one that hangs holds what it decodes
    if (d.hung) return `the host's ${name} (${d.program}) hangs here (${d.printed}): what relonix decodes with it waits on it`;
    return `the host's ${name} (${d.program}) does not work here (${d.printed}), so relonix decodes ${name} itself, more slowly`;
  });
  const broken = tools.filter((name) => f.decoders[name].program && !f.decoders[name].works);
  if (!broken.length) return ok('decoders', said.join('; '), { ...f.decoders });
  return warning(
    'decoders',
    said.join('; '),
    `repair ${broken.map((b) => f.decoders[b].program).join(' and ')} or take ${broken.length > 1 ? 'them' : 'it'} off PATH (or set ${broken.map(hide).join(' ')})`,
    { ...f.decoders },
  );
}

export function judgeNode(f: Pick<HostFacts, 'node'>): Finding {
  const major = Number(f.node.split('.')[0]);
  if (major >= 20) return ok('node', `Node.js ${f.node}`, { version: f.node });
  return problem(
    'node',
    `Node.js ${f.node} is older than 20, the oldest relonix supports`,
    'install Node.js 20 or newer (nodejs.org, or the distribution packages)',
    { version: f.node },
  );
}
