import type { Command } from 'commander';
import { layout } from '../prefix/layout.ts';
import { countOption, PREFIX_HELP } from './options.ts';

const HELP = `
A builder is a host with a relonix Nix at the same prefix path (and so the same store dir), reached
over ssh by Nix's own remote-build protocol; relonix run, env and build then build there as Nix
decides (--max-jobs 0: only there). Its wrapper <prefix>/bin/nix-store is the remote-program, so
the remote Nix gets its prefix's environment.

builder add checks the builder as Nix will reach it (its host key must be in
<prefix>/etc/ssh/known_hosts: the refusal prints the ssh-keyscan line), then writes
etc/nix/machines, a builders block in etc/nix/nix.conf (your own lines stay), and etc/ssh/config
(a Host per builder with its port, user and key; Nix 2.8's ssh:// URI cannot carry a port), which
the prefix's environment names in NIX_SSHOPTS=-F … . It also sets build-hook in the managed
block to the hook the active Nix has (its libexec/nix/build-remote, or \`nix __build-remote\`), which
Nix hands every build to; a Nix with neither is refused. Without builders no hook of the Nix runs
(Nix 2.8, which runs one whatever, gets a hook of the prefix that declines every build).

Examples:
  relonix builder add ssh://builder@10.0.0.7:2222 --key ~/.ssh/id_ed25519 --jobs 4
  relonix builder add ssh://builder@10.0.0.8 --bootstrap     # no Nix there yet: bootstrap it first
  relonix builder list
  relonix run -- nix-build --max-jobs 0 release.nix
  relonix builder remove ssh://builder@10.0.0.7:2222`;

interface AddOpts {
  prefix?: string;
  key?: string;
  jobs: number;
  system?: string;
  bootstrap?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('builder')
    .description("the prefix's remote builders: Nix's remote builds over ssh to relonix prefixes at the same path")
    .addHelpText('after', HELP);
  cmd
    .command('add')
    .description('check a remote prefix over ssh and make it a builder of this one')
    .option('--prefix <dir>', PREFIX_HELP)
    .option('--key <file>', 'the private key to log in with')
    .option('--jobs <n>', 'builds it runs at once', countOption('--jobs'), 1)
    .option('--system <system>', "the system it builds for (default: this host's)")
    .option(
      '--bootstrap',
      "with no Nix at the prefix there, bootstrap one over ssh: copies this relonix and runs it with the builder's node (>= 20), from the tarball or caches this prefix came from",
    )
    .argument('<url>', 'ssh://USER@HOST[:PORT]')
    .action(async (url: string, o: AddOpts) => {
      const { addBuilder } = await import('../remote/builders.ts');
      const b = await addBuilder({ layout: layout(o.prefix), url, key: o.key, jobs: o.jobs, system: o.system, bootstrap: o.bootstrap });
      process.stdout.write(`added ${b.url} (${b.system}, ${b.jobs} job${b.jobs === 1 ? '' : 's'})\n`);
    });
  cmd
    .command('list')
    .description('the builders, one a line: URL SYSTEM JOBS KEY')
    .option('--prefix <dir>', PREFIX_HELP)
    .action(async (o: { prefix?: string }) => {
      const { readBuilders } = await import('../remote/builders.ts');
      for (const b of await readBuilders(layout(o.prefix))) process.stdout.write(`${b.url} ${b.system} ${b.jobs} ${b.key ?? '-'}\n`);
    });
  cmd
    .command('remove')
    .description('stop building on a builder')
    .option('--prefix <dir>', PREFIX_HELP)
    .argument('<url>', 'ssh://USER@HOST[:PORT], as builder list shows it')
    .action(async (url: string, o: { prefix?: string }) => {
      const { removeBuilder } = await import('../remote/builders.ts');
      const b = await removeBuilder(layout(o.prefix), url);
      process.stdout.write(`removed ${b.url}\n`);
    });
}
