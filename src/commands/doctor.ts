import type { Command } from 'commander';
import type { Finding } from '../doctor/index.ts';
import { layout } from '../prefix/layout.ts';
import { emit } from '../util/emit.ts';
import { PREFIX_HELP } from './options.ts';

const HELP = `
Each probe prints ok, warning (works, with a cost or a limit worth knowing) or problem (relonix
or Nix will fail), and for every warning and problem the fix:
  node              Node.js 20 or newer
  kernel            the release, and the program-header rule of kernels before 5.18
  user-namespaces   whether unshare(CLONE_NEWUSER) works (informational: relonix needs none)
  seccomp           clone3, faccessat2, close_range, fchmodat2 made by a tiny probe program: a
                    filter answering EPERM instead of ENOSYS breaks glibc (the overlay in
                    patches/restricted-host.nix relaxes the test suites it breaks)
  prefix-dir        the prefix (or where it would be made): no symlink, writable, not noexec or
  store-dir         read-only (once it exists, a script is written and run in it), nosuid noted;
                    the same for the store dir
  space             free bytes and inodes against what a bootstrap needs (room for builds after)
  tmp               $TMPDIR: exec allowed (builds run there) and its size against a bootstrap's
  cgroup            CPU quota, memory limit, cpuset and affinity, and the max-jobs and cores
                    relonix gives builds from them
  reaper            whether orphans are reaped, or stay zombies (PID 1 that never waits)
  passwd            a passwd entry for this uid (ssh to remote builders needs one)
  ca-bundle         the CA bundle Nix is pointed at (NIX_SSL_CERT_FILE), NODE_EXTRA_CA_CERTS
  store-dir-length  whether the store dir is as long as /nix/store (cache.nixos.org's binaries
                    can then be translated)
  prefix            what the bootstrap finished, and whether its Nix verifies now: it runs, the
                    store is consistent, a check derivation is built again, every library it loads
                    comes from the store

Nothing is installed or changed: a probe script (in the prefix when it exists, and in $TMPDIR)
and the syscall probe (in a private directory under the prefix, else $TMPDIR) are written, run and
removed (what a killed run left, the next one removes); verifying a bootstrapped prefix builds its
check derivation again. A prefix or store dir of another uid gets no probe and is not verified:
that would run its owner's programs as this uid and leave this uid's files in it.

Exit status: 0 when nothing is a problem (warnings allowed), 5 when something is.

Examples:
  relonix doctor                       # the default prefix, before or after relonix bootstrap
  relonix doctor --prefix $HOME/nix
  relonix doctor --json | jq -c 'select(.event == "finding" and .verdict != "ok")'`;

const MARK: Record<Finding['verdict'], string> = { ok: 'ok', warning: 'warning', problem: 'PROBLEM' };

function render(f: Finding): string {
  const head = `${MARK[f.verdict].padEnd(8)} ${f.id.padEnd(17)} ${f.summary}`;
  return f.fix ? `${head}\n${' '.repeat(27)}fix: ${f.fix}` : head;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('what this host allows and what relonix will do about it, before or after a bootstrap')
    .option('--prefix <dir>', PREFIX_HELP)
    .option('--json', 'print one JSON event per finding, then done (or the error event)')
    .addHelpText('after', HELP)
    .action(async (o: { prefix?: string; json?: boolean }) => {
      const { runDoctor, doctorFoundProblems } = await import('../doctor/index.ts');
      const l = layout(o.prefix);
      const progress = o.json || !process.stderr.isTTY ? undefined : (t: string) => process.stderr.write(`… ${t}\n`);
      const findings = await runDoctor(l, progress);
      const count = (v: Finding['verdict']) => findings.filter((f) => f.verdict === v).length;
      if (o.json) {
        for (const f of findings) emit({ event: 'finding', ...f });
      } else {
        process.stdout.write(`relonix doctor: prefix ${l.prefix}, store dir ${l.storeDir}\n${findings.map(render).join('\n')}\n`);
        process.stdout.write(`${count('ok')} ok, ${count('warning')} warnings, ${count('problem')} problems\n`);
      }
      const problems = findings.filter((f) => f.verdict === 'problem');
      if (problems.length) throw doctorFoundProblems(problems);
      if (o.json) emit({ event: 'done', ok: count('ok'), warnings: count('warning'), problems: 0 });
    });
}
