import { type Command, Option } from 'commander';
import type { DurableBuildResult } from '../build/index.ts';
import type { BuildOutcome } from '../build/outcome.ts';
import { NIXOS_CACHE, NIXOS_KEY } from '../translate/nixos.ts';
import { emit } from '../util/emit.ts';
import { cacheNeedsKey } from '../util/errors.ts';
import { redactUrl } from '../util/redact.ts';
import { abandonInFlight, reportInterrupted } from '../util/signals.ts';
import { PREFIX_HELP, repeatable, secondsOption, warnOwnOptionsPassedOn } from './options.ts';

const HELP = `
relonix's own options come first; everything after \`--\`, or from the first option relonix
does not know, goes to nix-build as it is (-A, --arg, -j, --keep-going, files, .drv paths): one of
relonix's own options there goes to nix-build too, and relonix warns about it.

What it does, in order:
  1. Nix first. A prefix without a Nix (a wiped /tmp) is restored from --cache, as
     \`relonix bootstrap --cache\` would; a Nix the cache's relonix.json does not name yet is
     published to it, so that the next restart can restore it.
  2. nix-build substitutes from --cache (negative lookups never cached), so whatever an earlier
     run pushed is fetched, not built again. A .drv argument the store lacks comes from it too.
  3. Each derivation that finishes is queued by a post-build hook (a line in
     <prefix>/var/relonix/build/queue, synced) and pushed by relonix while the build goes on: its
     outputs with their closures, NAR before narinfo, and its log as log/<drv name> (nix log reads
     it). What an earlier run left queued is pushed first.
  4. cores and max-jobs come from the cgroup limits and CPU affinity of this process, unless you set
     them (-j, --max-jobs, --cores, --option, or your own lines in nix.conf).
  5. SIGTERM or SIGINT: nix-build stops, what has finished is pushed, and relonix exits within
     --grace seconds. What a restart can still lose is the builds that were running.

stdout ends with the output paths, one a line, as nix-build prints them (with --json: one JSON
event per line, the output paths in the "done" event). On a terminal a live line shows
built/total, running, pushed and how many finished derivations are not pushed yet.

Exit status: nix-build's (0 built; 1 or 100-104 a build failed; 128+N killed by signal N), or
6 when everything built but some pushes still failed after retries: those derivations stay
queued, \`relonix status\` lists them and the next relonix build pushes them first. 2 usage,
4 another relonix build holds the prefix.

Examples:
  relonix keygen --name mycache-1 --out keys/
  relonix build --cache file:///persist/cache --secret-key keys/mycache-1.secret -- -A hello
  relonix build --cache https://cache.example.org --secret-key keys/mycache-1.secret \\
      --keep-going -j 2 -I nixpkgs=/src/nixpkgs '<nixpkgs>' -A gcc
  relonix build --cache s3://bucket?region=eu-west-1 --secret-key k.secret --json -- release.nix
  # after a restart that wiped /tmp: the same command restores Nix and goes on
  relonix status                       # the queue: finished but not yet pushed
  # a prefix whose store dir is as long as /nix/store (bootstrap --store-dir /tmp/store): what
  # cache.nixos.org already built is translated into --cache first, the rest is built
  relonix build --cache file:///persist/cache --secret-key k.secret --translate-from https://cache.nixos.org \\
      -- -I nixpkgs=/src/nixpkgs '<nixpkgs>' -A ripgrep`;

interface Opts {
  prefix?: string;
  cache: string;
  secretKey: string;
  trustedKey: string[];
  grace: number;
  json?: boolean;
  translateFrom?: string;
  translateKey: string[];
}

export function register(program: Command): void {
  program
    .command('build')
    .description('nix-build that pushes every finished derivation to a binary cache as it completes, and after a restart picks up where it stopped')
    .option('--prefix <dir>', PREFIX_HELP)
    .requiredOption('--cache <url>', 'the cache to fill and substitute from: file:///dir, http(s)://… (PUT), s3://bucket?…')
    .requiredOption('--secret-key <file>', 'NAME.secret to sign with (relonix keygen); its public key is trusted without --trusted-key')
    .option('--trusted-key <key>', 'another public key the cache holds signatures of, name:base64 (repeatable)', repeatable, [] as string[])
    .addOption(new Option('--grace <seconds>', 'after SIGTERM or SIGINT, exit within this many seconds').default(8).argParser(secondsOption('--grace')))
    .option('--json', 'one JSON event per line on stdout instead of the progress display')
    .option(
      '--translate-from <url>',
      'first publish to --cache what this cache built for /nix/store, rewritten for the prefix (a store dir as long as /nix/store; see relonix translate)',
    )
    .option('--translate-key <key>', `--translate-from's public key, name:base64 (repeatable; cache.nixos.org's own by default)`, repeatable, [] as string[])
    .argument('[nix-build-args...]', "nix-build's arguments")
    .allowUnknownOption()
    .passThroughOptions()
    .addHelpText('after', HELP)
    .action(async (args: string[], o: Opts, cmd: Command) => {
      warnOwnOptionsPassedOn(cmd, args, 'nix-build', !!o.json);
      // loaded on use, like every command's layer: start-up compiles only what argv needs
      const { runDurableBuild } = await import('../build/index.ts');
      const { buildOutcome } = await import('../build/outcome.ts');
      const r = await runDurableBuild({
        prefix: o.prefix,
        cache: o.cache,
        secretKey: o.secretKey,
        trustedKeys: o.trustedKey,
        grace: o.grace,
        json: !!o.json,
        args,
        translateFrom: o.translateFrom ? { url: o.translateFrom, keys: await translateKeys(o.translateFrom, o.translateKey) } : undefined,
      });
      report(r, buildOutcome(r, redactUrl(o.cache)), !!o.json);
    });
}

/** The upstream's keys: given, or cache.nixos.org's own for cache.nixos.org. */
async function translateKeys(url: string, keys: string[]): Promise<string[]> {
  if (keys.length) return keys;
  if (url.replace(/\/+$/, '') === NIXOS_CACHE) return [NIXOS_KEY];
  throw cacheNeedsKey('--translate-from', url, '--translate-key');
}

function report(r: DurableBuildResult, outcome: BuildOutcome, json: boolean): void {
  const outputs = r.stdout.split('\n').filter(Boolean);
  if (json) emit({ event: 'done', exitCode: r.code, outputs, pending: r.pending.length });
  else process.stdout.write(r.stdout);
  // pushes still in flight when the grace period ran out are left to the next run
  if (r.abandoned) abandonInFlight();
  if ('signal' in outcome) {
    process.exitCode = reportInterrupted(outcome.signal, outcome.kept, json);
    return;
  }
  if ('error' in outcome) throw outcome.error;
  if (outcome.note) r.display.say(outcome.note);
  process.exitCode = outcome.exitCode;
}
