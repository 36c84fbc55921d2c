import type { Command } from 'commander';
import { layout } from '../store/layout.ts';
import { prefixEnvironment } from '../bootstrap/activate.ts';
import { runForeground } from '../util/spawn.ts';

/** Runs a command in the prefix's Nix environment; resolves to the exit code the shell would see. */
export async function runInPrefix(prefix: string | undefined, cmd: string, args: string[]): Promise<number> {
  const env = await prefixEnvironment(layout(prefix));
  const r = await runForeground(cmd, args, env);
  if (r.startError) {
    // what a shell answers, so scripts can tell "not there" (127) and "not runnable" (126) from a failure
    const e = r.startError;
    const why = e.code === 'ENOENT' ? "not found in the prefix's PATH" : e.code === 'EACCES' ? 'permission denied (not executable?)' : e.message;
    process.stderr.write(`relonix: error: cannot run ${cmd}: ${why}\n`);
    process.stderr.write(`  fix: is ${cmd} installed in the prefix? relonix run -- nix-env -q lists the profile\n`);
  }
  return r.code;
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
