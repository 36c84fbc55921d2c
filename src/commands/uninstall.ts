import type { Command } from 'commander';
import { layout } from '../prefix/layout.ts';
import { PREFIX_HELP } from './options.ts';

const HELP = `
Removes a prefix relonix bootstrapped (one that holds var/relonix): its translator, if it runs,
is stopped first; then its store, and the store dir outside it that its state records (only when
that holds nothing but store paths), the wrappers in bin/, etc/, home/ and var/, then the
directory itself. Files relonix did not make stay where they are, and are listed. It takes the
prefix's locks: it waits for nothing, and is refused (exit 4) while another relonix works in the
prefix.

Refused (exit 2): a directory that is not a relonix prefix, and a store dir holding other files.

Examples:
  relonix uninstall                          # the prefix at $RELONIX_PREFIX, else /tmp/nix
  relonix uninstall --prefix /tmp/relonix-demo`;

export function register(program: Command): void {
  program
    .command('uninstall')
    .description('remove a relonix prefix and its store, and nothing that relonix did not make')
    .option('--prefix <dir>', PREFIX_HELP)
    .addHelpText('after', HELP)
    .action(async (o: { prefix?: string }) => {
      const { uninstallPrefix } = await import('../prefix/uninstall.ts');
      const { stopTranslator } = await import('../translator/client.ts');
      const l = layout(o.prefix);
      const r = await uninstallPrefix(l, { stopTranslator: () => stopTranslator(l) });
      if (r.stopped) process.stdout.write(`stopped ${r.stopped} of ${l.prefix}\n`);
      for (const x of r.removed) process.stdout.write(`removed ${x.path} (${x.what})\n`);
      if (r.left.length) process.stdout.write(`left ${l.prefix} in place: it holds ${r.left.join(', ')}, which relonix did not make\n`);
    });
}
