import type { Command } from 'commander';
import { layout } from '../prefix/layout.ts';
import { PREFIX_HELP } from './options.ts';

export function register(program: Command): void {
  program
    .command('run')
    .description("run a command with the prefix's Nix environment")
    .option('--prefix <dir>', PREFIX_HELP)
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
      const { runInPrefix } = await import('../prefix/tools.ts');
      process.exitCode = await runInPrefix(layout(o.prefix), cmd!, args);
    });
}
