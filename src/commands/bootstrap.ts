// src/commands/: one file a command: its options and help, one call into the layer that does the
// work (loaded when the command runs), and what it prints.
import { type Command, Option } from 'commander';
import type { BootstrapResult } from '../bootstrap/engine.ts';
import { layout } from '../prefix/layout.ts';
import { emit } from '../util/emit.ts';
import { RelonixError } from '../util/errors.ts';
import { PREFIX_HELP, repeatable } from './options.ts';

const HELP = `
Stages (each one recorded in <prefix>/var/relonix/state.json; a re-run continues at the
first unfinished one, and a finished prefix is a fast no-op):
  preflight   prefix writable and executable, enough free space and inodes, machine matches the tarball
              (relonix doctor reports the same and more, before a bootstrap)
  fetch       download the official tarball (resumable; checked against --sha256 or URL.sha256); a
              local tarball is checked where it lies, and one replaced at the same path is fetched again
  unpack      unpack into <prefix>/var/relonix/staging, relocating each store path from /nix/store
              to <prefix>/store as it leaves the tar stream (xz decompresses meanwhile): ELF
              interpreters and RUNPATHs, symlinks, scripts; store paths inside binary data are listed
              by \`relonix status\`. With a --store-dir as long as /nix/store every reference is
              rewritten in place, binary data included (Nix's own compiled-in store dir too).
              A full disk says so: free space and run the same command again
  relocate    move the relocated closure into the store
  configure   etc/nix/nix.conf (sandbox off, no build users, your caches) and etc/profile.d/relonix.sh
  register    load the closure into the new store's database
  verify      at once: Nix into the default profile, nix-store --verify --check-contents,
              nix --version, a trivial build, libraries from the store
  cache-nix   (with --cache and --url) install the Nix built for this prefix from the cache

With --cache and no --url there is no tarball: preflight, configure, then
  restore     the Nix the cache's relonix.json names, with its closure: every narinfo signed by a
              --trusted-key, every NAR hash-checked before it takes its name, all registered at once
and verify. This is how a host that lost /tmp comes back in about a second (relonix publish fills
the cache).

Examples:
  relonix bootstrap                                  # official release into /tmp/nix
  relonix bootstrap --prefix $HOME/nix               # another prefix (or RELONIX_PREFIX)
  relonix bootstrap --store-dir /tmp/store           # 10 bytes, like /nix/store: see relonix translate
  relonix bootstrap --url https://mirror.example/nix-2.24.10-x86_64-linux.tar.xz
  relonix bootstrap --url ./nix-2.8.0-x86_64-linux.tar.xz --sha256 <64 hex digits>
  relonix bootstrap --cache https://cache.example.org --trusted-key cache.example.org-1:BASE64
  relonix bootstrap --cache file:///persist/cache --trusted-key "$(cat keys/mycache-1.public)"
  relonix bootstrap --json | jq .                    # one JSON event per line, for scripts
  relonix bootstrap --wait 600                       # queue behind another bootstrap of the prefix

Then:  eval "$(relonix env)"   or   relonix run -- nix-build ...`;

export function register(program: Command): void {
  program
    .command('bootstrap')
    .description('install a working Nix under the prefix: download, relocate, configure, register, verify')
    .option('--prefix <dir>', PREFIX_HELP)
    .option(
      '--store-dir <dir>',
      'the store dir, when not <prefix>/store; as long as /nix/store (10 bytes), binaries relocate in place and cache.nixos.org can be translated',
    )
    .option('--url <url>', 'Nix binary tarball: https://, http://, file:// or a local path (default: the official release)')
    .option('--sha256 <hex>', 'expected sha256 of the tarball (default: read from URL.sha256)')
    .option('--cache <url>', 'binary cache for this prefix (repeatable)', repeatable, [] as string[])
    .option('--trusted-key <key>', 'public key the caches sign with, name:base64 (repeatable)', repeatable, [] as string[])
    .addOption(new Option('--wait <seconds>', 'wait this long for another relonix holding the prefix').argParser(parseSeconds))
    .option('--json', 'print one JSON object per event instead of the progress display')
    .addHelpText('after', HELP)
    .action(
      async (o: {
        prefix?: string;
        storeDir?: string;
        url?: string;
        sha256?: string;
        cache: string[];
        trustedKey: string[];
        wait?: number;
        json?: boolean;
      }) => {
        if (o.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.sha256)) {
          throw new RelonixError(`--sha256 must be 64 hex digits, got "${o.sha256}"`, { kind: 'usage', hint: 'copy it from the release page or URL.sha256' });
        }
        const { runBootstrap } = await import('../bootstrap/engine.ts');
        const r = await runBootstrap({
          prefix: o.prefix,
          storeDir: o.storeDir,
          url: o.url,
          sha256: o.sha256?.toLowerCase(),
          caches: o.cache,
          trustedKeys: o.trustedKey,
          waitSeconds: o.wait,
          json: o.json,
        });
        reportBootstrap(r, !!o.json, o.prefix ? ` --prefix ${r.prefix}` : '');
      },
    );
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new RelonixError(`--wait takes a number of seconds, got "${v}"`, { kind: 'usage' });
  return n;
}

/** What a finished bootstrap says: a JSON event, or how to use the Nix it made. */
export function reportBootstrap(r: BootstrapResult, json: boolean, envFlag: string): void {
  if (json) {
    emit({ event: 'done', alreadyDone: r.alreadyDone, prefix: r.prefix, nix: r.nix, ms: r.ms, ...(r.alreadyDone ? {} : { stageMs: r.stageMs }) });
    return;
  }
  const say = (text: string) => process.stdout.write(`${text}\n`);
  if (r.alreadyDone) {
    say(`relonix: ${r.prefix} is already bootstrapped (Nix ${r.nix}); nothing to do. Use it: eval "$(relonix env${envFlag})"`);
    return;
  }
  say(`relonix: Nix is ready in ${r.prefix} (${(r.ms / 1000).toFixed(1)}s).`);
  say(`  use it in this shell:   eval "$(relonix env${envFlag})"`);
  say(`  or run one command:     relonix run${envFlag} -- nix-build '<your.nix>'`);
  say(`  every login:            . ${layout(r.prefix).envScript}`);
}
