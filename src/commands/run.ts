import type { Command } from 'commander';
import { constants } from 'node:os';
import { layout } from '../store/layout.ts';
import { prefixEnvironment } from '../bootstrap/activate.ts';
import { UserError, EXIT } from '../util/errors.ts';

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
      throw new UserError(`cannot run ${cmd}: ${r.originalMessage ?? r.shortMessage}`, {
        exitCode: EXIT.failure,
        hint: `is ${cmd} installed in the prefix? relonix run -- nix-env -q lists the profile`,
      });
    }
    if (r.signal) return 128 + (constants.signals[r.signal] ?? 0);
    return r.exitCode ?? EXIT.failure;
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
The exit code is the command's; signals sent to relonix are passed on to it.`,
    )
    .action(async (argv: string[], o: { prefix?: string }) => {
      const [cmd, ...args] = argv;
      process.exitCode = await runInPrefix(o.prefix, cmd!, args);
    });
}
