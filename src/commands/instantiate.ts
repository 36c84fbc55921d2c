import type { Command } from 'commander';
import { layout } from '../prefix/layout.ts';
import { redactUrl } from '../util/redact.ts';
import { PREFIX_HELP, warnOwnOptionsPassedOn } from './options.ts';

const HELP = `
The evaluating half of a split pipeline: this host holds the expression (nixpkgs, your files) and
evaluates it; another host, or this one after a wipe, builds what it printed and never needs the
expression:
  relonix instantiate --cache URL --secret-key k.secret -- release.nix -A hello
  relonix build --cache URL --secret-key k.secret -- /tmp/nix/s/…-hello-2.12.drv

Nothing is built. The closure of every .drv (the derivations and the sources they name) is
published to --cache, signed, and so is the prefix's Nix when the cache's relonix.json does not
name it yet, so that the building host can restore its Nix from the same cache. stdout ends with
the .drv paths, one a line (nix-instantiate's "…drv!out" printed as the path); anything else it
prints (--eval, --parse) is refused, exit 2. relonix's own options go before --: after it they
are nix-instantiate's, and relonix says so.`;

interface Opts {
  prefix?: string;
  cache: string;
  secretKey: string;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('instantiate')
    .description("evaluate with the prefix's nix-instantiate, build nothing, and publish every resulting .drv with its closure to a cache")
    .option('--prefix <dir>', PREFIX_HELP)
    .requiredOption('--cache <url>', 'the cache to publish to: file:///dir, http(s)://… (PUT), s3://bucket?…')
    .requiredOption('--secret-key <file>', 'NAME.secret to sign with (relonix keygen)')
    .option('--quiet', 'print only the .drv paths')
    .argument('[nix-instantiate-args...]', "nix-instantiate's arguments")
    .allowUnknownOption()
    .passThroughOptions()
    .addHelpText('after', HELP)
    .action(async (args: string[], o: Opts, cmd: Command) => {
      warnOwnOptionsPassedOn(cmd, args, 'nix-instantiate');
      const { instantiateToCache } = await import('../build/instantiate.ts');
      const log = (m: string) => (o.quiet && !m.startsWith('notice') ? undefined : process.stderr.write(`${m}\n`));
      const r = await instantiateToCache({ layout: layout(o.prefix), cache: o.cache, secretKeyFile: o.secretKey, args, log });
      log(
        `published the closure of ${r.drvs.length} derivation${r.drvs.length === 1 ? '' : 's'} (${r.closure} paths, ${r.uploaded} uploaded) to ${redactUrl(o.cache)}`,
      );
      if (r.nixPublished) log(`published ${r.nixPublished} and named it in ${redactUrl(o.cache)}/relonix.json, so the building host can restore it`);
      process.stdout.write(r.drvs.map((d) => `${d}\n`).join(''));
    });
}
