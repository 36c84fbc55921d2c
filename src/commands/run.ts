import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { layout } from '../store/layout.ts';
import { prefixEnvironment } from '../bootstrap/activate.ts';

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Runs a command in the prefix's Nix environment; resolves to the exit code the shell would see. */
export async function runInPrefix(prefix: string | undefined, cmd: string, args: string[]): Promise<number> {
  const env = await prefixEnvironment(layout(prefix));
  // forwarders first: a signal that comes while the child starts is passed on once it exists (libuv
  // holds signals back during spawn, so one sent then used to find no handler and kill relonix)
  let child: ChildProcess | undefined;
  const pending: NodeJS.Signals[] = [];
  const forward = (sig: NodeJS.Signals) => (child ? child.kill(sig) : pending.push(sig));
  for (const s of FORWARDED) process.on(s, forward);
  const c = (child = spawn(cmd, args, { env, stdio: 'inherit' }));
  for (const sig of pending) c.kill(sig);
  try {
    return await new Promise<number>((resolve) => {
      c.once('error', (e: NodeJS.ErrnoException) => {
        // what a shell answers, so scripts can tell "not there" (127) and "not runnable" (126) from a failure
        const why = e.code === 'ENOENT' ? "not found in the prefix's PATH" : e.code === 'EACCES' ? 'permission denied (not executable?)' : e.message;
        process.stderr.write(`relonix: error: cannot run ${cmd}: ${why}\n`);
        process.stderr.write(`  fix: is ${cmd} installed in the prefix? relonix run -- nix-env -q lists the profile\n`);
        resolve(e.code === 'ENOENT' ? 127 : e.code === 'EACCES' ? 126 : 1);
      });
      c.once('exit', (code, signal) => resolve(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1)));
    });
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
  }
}

export function register(program: Command): void {
  // `relonix run nix --version`: options after the command name belong to the command
  program.enablePositionalOptions();
  program
    .command('run')
    .description('run a command with the prefix\'s Nix environment')
    .option('--prefix <dir>', 'the prefix (default $RELONIX_PREFIX, else /tmp/nix)')
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .passThroughOptions()
    .addHelpText(
      'after',
      `
Examples:
  relonix run -- nix-build '<nixpkgs>' -A hello
  relonix run -- nix-store --verify --check-contents
  relonix run --prefix $HOME/nix -- nix-shell -p git
The exit code is the command's (127 when it is not found, 126 when it cannot be run,
as in a shell); signals sent to relonix are passed on to it.`,
    )
    .action(async (argv: string[], o: { prefix?: string }) => {
      const [cmd, ...args] = argv;
      process.exitCode = await runInPrefix(o.prefix, cmd!, args);
    });
}
