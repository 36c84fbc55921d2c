import type { Command } from 'commander';
import { constants } from 'node:os';
import { layout } from '../store/layout.ts';
import { prefixEnvironment } from '../bootstrap/activate.ts';

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Runs a command in the prefix's Nix environment; resolves to the exit code the shell would see. */
export async function runInPrefix(prefix: string | undefined, cmd: string, args: string[]): Promise<number> {
  const env = await prefixEnvironment(layout(prefix));
  // loaded on use: every relonix command loads this module, and execa is slow to import
  const { execa } = await import('execa');
  const child = execa(cmd, args, { env, extendEnv: false, stdio: 'inherit', reject: false });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  for (const s of FORWARDED) process.on(s, forward);
  try {
    const r = await child;
    if (r.failed && r.exitCode === undefined && !r.signal) {
      // what a shell answers, so scripts can tell "not there" (127) and "not runnable" (126) from a failure
      const errno = (r as { code?: string }).code ?? (r.cause as NodeJS.ErrnoException | undefined)?.code;
      process.stderr.write(`relonix: error: cannot run ${cmd}: ${errno === 'ENOENT' ? "not found in the prefix's PATH" : errno === 'EACCES' ? 'permission denied (not executable?)' : (r.originalMessage ?? r.shortMessage)}\n`);
      process.stderr.write(`  fix: is ${cmd} installed in the prefix? relonix run -- nix-env -q lists the profile\n`);
      return errno === 'ENOENT' ? 127 : errno === 'EACCES' ? 126 : 1;
    }
    if (r.signal) return 128 + (constants.signals[r.signal] ?? 0);
    return r.exitCode ?? 1;
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
