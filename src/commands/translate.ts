import type { Command } from 'commander';
import { NIXOS_CACHE, NIXOS_KEY } from '../translate/nixos.ts';
import type { TranslateResult } from '../translate/translate.ts';
import { cacheNeedsKey, RelonixError } from '../util/errors.ts';
import { cameAfterDashes, countOption, HEADER_HELP, PREFIX_HELP, repeatable, warnOwnOptionsPassedOn } from './options.ts';

const HELP = `
What it does: a store path's hash includes its store dir, so nothing on ${NIXOS_CACHE} can be
substituted into a prefix. But when the prefix's store dir is exactly as long as /nix/store
(10 bytes: bootstrap with --store-dir /tmp/store, /app/store, …), every store reference in a NAR,
in text and in binaries alike, can be rewritten in place without moving a byte. translate does
that for whole closures and publishes the result, signed with your key, to a cache for the prefix.

Two modes:
  -- ARGS...      derivation mode: the prefix's nix-instantiate evaluates ARGS; for each derivation
                  of the closure relonix computes the twin Nix would have made at /nix/store, asks
                  upstream for the twin's outputs, and translates every one it has (hash parts and
                  store dir rewritten to the prefix's). nix-build with --to as a substituter then
                  builds only what upstream did not have.
  STORE-PATH...   path mode: upstream's closure of these paths as it is, each hash part kept, only
                  the store dir changed. The fast way to install one prebuilt tool.

Checked before anything is published: upstream's nix-cache-info (its store dir must be as long as
the prefix's), every narinfo's signature (--from-key), and every NAR's hash and size. NARs go up
first and narinfos last, all of them at the end: a refusal publishes nothing, a killed run leaves
no narinfo without its NAR, and a re-run skips what the target has.
Not rewritable: store references inside compressed data (gzip, xz, zip members). They are listed,
with the packages that carry them; such a file still names /nix/store.

Examples:
  relonix bootstrap --store-dir /tmp/store && relonix keygen --name mine-1 --out ~/keys
  relonix translate --to file:///tmp/cache --secret-key ~/keys/mine-1.secret -- '<nixpkgs>' -A hello
  relonix run -- nix-build '<nixpkgs>' -A hello --option substituters file:///tmp/cache \\
      --option trusted-public-keys "$(cat ~/keys/mine-1.public)"
  relonix translate --to file:///tmp/cache --secret-key ~/keys/mine-1.secret /nix/store/<hash>-ripgrep-14.1.0
  relonix translate --from http://127.0.0.1:8080 --from-key up-1:BASE64 --to s3://bucket?endpoint=… …

Exit codes: 0 done, 2 usage, 3 integrity refused (a signature, a NAR hash, an upstream store dir
of another length; nothing was published), 6 network failure after retries.`;

interface Opts {
  prefix?: string;
  from: string;
  fromKey: string[];
  to: string;
  secretKey: string;
  compression: string;
  jobs: number;
  header: string[];
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('translate')
    .description(`publish, for the prefix's store dir, what ${NIXOS_CACHE} (or another cache) built for a store dir of the same length`)
    .option('--prefix <dir>', PREFIX_HELP)
    .option('--from <url>', 'the cache to translate from', NIXOS_CACHE)
    .option('--from-key <key>', `its public key, name:base64 (repeatable; default ${NIXOS_KEY} with the default --from)`, repeatable, [] as string[])
    .requiredOption('--to <url>', "the cache for the prefix's store dir: file:///dir, http(s)://…, s3://bucket?endpoint=…&region=…")
    .requiredOption('--secret-key <file>', 'NAME.secret to sign with (relonix keygen)')
    .option('--compression <c>', 'auto, zstd, xz or none (as relonix publish)', 'auto')
    .option('--jobs <n>', 'paths translated at once', countOption('--jobs'), 4)
    .option('--header <h>', HEADER_HELP, repeatable, [] as string[])
    .option('--json', 'print the result as one JSON object')
    .option('--quiet', 'print only the summary')
    .argument('[args...]', 'after --: nix-instantiate arguments; else store paths')
    .passThroughOptions()
    .addHelpText('after', HELP)
    .action(async (args: string[], o: Opts, cmd: Command) => {
      const derivations = cameAfterDashes(cmd, 'translate');
      if (derivations) warnOwnOptionsPassedOn(cmd, args, 'nix-instantiate');
      if (args.length === 0) throw nothingToTranslate();
      if (o.from !== NIXOS_CACHE && o.fromKey.length === 0) {
        throw cacheNeedsKey('--from', o.from, '--from-key');
      }
      const { runTranslate } = await import('../translate/translate.ts');
      const t0 = Date.now();
      const r = await runTranslate({
        prefix: o.prefix,
        from: o.from,
        fromKeys: o.fromKey,
        to: o.to,
        secretKeyFile: o.secretKey,
        compression: o.compression,
        jobs: o.jobs,
        headers: o.header,
        derivations,
        args,
        log: (m) => (o.quiet || o.json ? undefined : process.stderr.write(`${m}\n`)),
      });
      if (o.json) process.stdout.write(`${JSON.stringify({ ...r, ms: Date.now() - t0 }, null, 2)}\n`);
      else process.stdout.write(summary(r, Date.now() - t0));
    });
}

function summary(r: TranslateResult, ms: number): string {
  const out = [
    `translated ${r.published.length} path${r.published.length === 1 ? '' : 's'} (${r.narBytes} bytes) from ${r.from} to ${r.to}; ${r.present.length} were there already; ${(ms / 1000).toFixed(1)} s`,
  ];
  if (r.missing.length) out.push(`not in ${r.from} (nix-build builds them): ${r.missing.length}`, ...r.missing.map((p) => `  ${p}`));
  if (r.refused.length) out.push(`not translatable (nix-build builds them): ${r.refused.length}`, ...r.refused.map((x) => `  ${x.path}: ${x.why}`));
  if (r.compressed.length) {
    out.push(`store references inside compressed data, left as upstream wrote them, in ${r.compressed.length} package${r.compressed.length === 1 ? '' : 's'}:`);
    for (const c of r.compressed) {
      out.push(`  ${c.path}`);
      for (const f of c.files)
        out.push(
          `    ${f.file || '(the whole path)'} (${f.format}${f.found.length ? `: ${f.found.reduce((n, x) => n + x.occurrences, 0)} references` : ''}${f.error ? `; unreadable: ${f.error}` : ''})`,
        );
    }
  }
  return `${out.join('\n')}\n`;
}

/** relonix translate with neither store paths nor an expression. */
export function nothingToTranslate(): RelonixError {
  return new RelonixError('nothing to translate', {
    kind: 'usage',
    hint: 'pass store paths, or -- and nix-instantiate arguments (relonix translate --help)',
  });
}
