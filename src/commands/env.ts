import { type Command, Option } from 'commander';
import type { Shell } from '../prefix/environment.ts';
import { layout } from '../prefix/layout.ts';
import { PREFIX_HELP } from './options.ts';

export function register(program: Command): void {
  program
    .command('env')
    .description('print the environment for the prefix\'s Nix: eval "$(relonix env)"')
    .option('--prefix <dir>', PREFIX_HELP)
    .addOption(new Option('--shell <shell>', 'output syntax').choices(['sh', 'fish', 'json']).default('sh'))
    .addHelpText(
      'after',
      `
Examples:
  eval "$(relonix env)"                       # sh, bash, zsh
  relonix env --shell fish | source           # fish
  relonix env --shell json                    # for scripts
Sets NIX_STORE_DIR, NIX_STATE_DIR, NIX_LOG_DIR, NIX_CONF_DIR, NIX_SSL_CERT_FILE and PATH, and USER
and HOME when this shell has none (a uid without a passwd entry).`,
    )
    .action(async (o: { prefix?: string; shell: Shell }) => {
      const { prefixVariables, renderEnv } = await import('../prefix/environment.ts');
      const vars = await prefixVariables(layout(o.prefix));
      process.stdout.write(renderEnv(vars, o.shell));
    });
}
