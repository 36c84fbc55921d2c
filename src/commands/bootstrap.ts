// src/commands/: one file a command: its options and help, one call into the layer that does the
// work (loaded when the command runs), and what it prints.
import { type Command, Option } from 'commander';
import type { BootstrapResult } from '../bootstrap/engine.ts';
import { DEFAULT_MAX_DOWNLOAD } from '../net/local.ts';
import { layout } from '../prefix/layout.ts';
import { emit } from '../util/emit.ts';
import { shQuote } from '../util/shell.ts';
import { badOptionValue, PREFIX_HELP, repeatable, secondsOption } from './options.ts';

const HELP = `
Before anything is written, refused: a prefix Nix cannot live at (whitespace, " \\ : ; or
control characters, over 483 bytes), a directory that is not empty and not a relonix prefix, a
prefix bootstrapped with another --store-dir (relonix uninstall it first).

Stages (each one recorded in <prefix>/var/relonix/state.json; a re-run continues at the
first unfinished one, and a finished prefix is a fast no-op; Ctrl-C says what was kept):
  preflight   prefix writable and executable, enough free space and inodes, machine matches the tarball,
              a --url that is a regular file, a store dir that is empty or this prefix's own
              (relonix doctor reports the same and more, before a bootstrap)
  fetch       download the official tarball (resumable; checked against --sha256 or URL.sha256;
              cut at the size the server announced, or at --max-download; the free space is
              checked again once the size is known); a local tarball is checked where it lies,
              and one replaced at the same path is fetched again
  unpack      unpack into <prefix>/var/relonix/staging, relocating each store path from /nix/store
              to the store dir as it leaves the tar stream (xz decompresses meanwhile): ELF
              interpreters and RUNPATHs, symlinks, scripts. With a store dir as long as /nix/store
              (the default <prefix>/s when that is 10 bytes, as /tmp/nix/s) every reference is
              rewritten in place, binary data included; otherwise store paths inside binary data
              are listed by \`relonix status\`
  relocate    move the relocated closure into the store
  configure   etc/nix/nix.conf (sandbox off, no build users, your caches, the translator),
              etc/profile.d/relonix.sh, and the translator: its key, a free loopback port, each
              --upstream checked (another store dir length is refused; unreachable is a warning)
  register    load the closure into the new store's database
  verify      at once: Nix into the default profile, nix-store --verify --check-contents,
              nix --version, a trivial build, libraries from the store
  cache-nix   (with --cache and --url) install the Nix built for this prefix from the cache
A full disk in any stage is said as one (where, what is free, what is needed); free space and run
the same command again: it continues where it stopped.

With --cache and no --url there is no tarball: preflight, configure, then
  restore     the Nix the cache's relonix.json names, with its closure: every narinfo signed by a
              --trusted-key, every NAR hash-checked before it takes its name, all registered at once
and verify. This is how a host that lost /tmp comes back in about a second (relonix publish fills
the cache).

Binaries: with a store dir of 10 bytes, every Nix command in the prefix gets what the upstream
(https://cache.nixos.org unless --upstream says otherwise) built, translated on demand for this
store dir by a loopback substituter the bin/ wrappers start (relonix translator --help).

Examples:
  relonix bootstrap                                  # official release into /tmp/nix, store /tmp/nix/s
  relonix bootstrap --prefix /app/nix                # another prefix (or RELONIX_PREFIX): store /app/nix/s
  relonix bootstrap --prefix $HOME/nix --store-dir /tmp/store   # a longer prefix, a store dir of 10 bytes
  relonix bootstrap --upstream https://cache.example.org --upstream-key cache.example.org-1:BASE64
  relonix bootstrap --no-upstream                    # build everything here
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
      'the store dir (default <prefix>/s when that is 10 bytes, as long as /nix/store, else <prefix>/store); only a store dir of 10 bytes takes upstream binaries',
    )
    .option('--url <url>', 'Nix binary tarball: https://, http://, file:// or a local path (default: the official release)')
    .option('--sha256 <hex>', 'expected sha256 of the tarball (default: read from URL.sha256)')
    .option('--cache <url>', 'binary cache for this prefix (repeatable)', repeatable, [] as string[])
    .option('--trusted-key <key>', 'public key the caches sign with, name:base64 (repeatable)', repeatable, [] as string[])
    .option(
      '--upstream <url>',
      "a cache whose binaries are translated on demand for this prefix's store dir (repeatable; default https://cache.nixos.org)",
      repeatable,
      [] as string[],
    )
    .option('--upstream-key <key>', "public key the upstreams' narinfos must be signed with, name:base64 (repeatable)", repeatable, [] as string[])
    .option('--no-upstream', 'no upstream: Nix builds what no --cache has')
    .addOption(new Option('--wait <seconds>', 'wait this long for another relonix holding the prefix').argParser(secondsOption('--wait')))
    .addOption(
      new Option('--max-download <MiB>', 'the largest tarball to download (official ones are under 100 MiB)')
        .default(DEFAULT_MAX_DOWNLOAD / 2 ** 20)
        .argParser(parseMib),
    )
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
        upstream: string[] | false;
        upstreamKey: string[];
        wait?: number;
        maxDownload: number;
        json?: boolean;
      }) => {
        if (o.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.sha256)) {
          throw badOptionValue('--sha256', o.sha256, '64 hex digits', '<64 hex digits from the release page or URL.sha256>');
        }
        const { runBootstrap } = await import('../bootstrap/engine.ts');
        const { upstreamsOf } = await import('../translator/setup.ts');
        const r = await runBootstrap({
          prefix: o.prefix,
          storeDir: o.storeDir,
          url: o.url,
          sha256: o.sha256?.toLowerCase(),
          caches: o.cache,
          trustedKeys: o.trustedKey,
          upstreams: upstreamsOf(o.upstream, o.upstreamKey),
          waitSeconds: o.wait,
          maxDownloadBytes: o.maxDownload * 2 ** 20,
          json: o.json,
        });
        reportBootstrap(r, !!o.json, o.prefix ? ` --prefix ${shQuote(r.prefix)}` : '');
      },
    );
}

function parseMib(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw badOptionValue('--max-download', v, 'a size in MiB', '512');
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
  say(`  every login:            . ${shQuote(layout(r.prefix).envScript)}`);
}
