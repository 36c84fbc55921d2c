import type { Command } from 'commander';
import { layout } from '../prefix/layout.ts';
import { redactUrl } from '../util/redact.ts';
import { countOption, HEADER_HELP, PREFIX_HELP, repeatable } from './options.ts';

const HELP = `
NARs go up first and each narinfo last; each narinfo is then read back and its NAR's size checked,
and relonix.json names a Nix only once its whole closure reads back: an origin that answers 2xx and
keeps nothing is an error, never a cache that sends restores to a hole.

Credentials: user:password in an http(s) URL, a netrc entry for the host (the prefix's
etc/nix/netrc first, then $NETRC or ~/.netrc), --header, or AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY for s3://. None of them, and nothing of the secret key, is ever printed.

Exit codes: 0 published, 1 the origin did not keep what it was sent, 2 usage (a bad key or
option, refused credentials, an origin that takes no uploads), 3 a store path changed on disk,
6 network failure after retries.`;

interface Opts {
  prefix?: string;
  to: string;
  secretKey: string;
  asNix?: string;
  compression: string;
  jobs: number;
  header: string[];
  nixStore?: string;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('publish')
    .description('sign and upload store paths (with their closures) to a binary cache; no path: the active Nix')
    .option('--prefix <dir>', PREFIX_HELP)
    .requiredOption('--to <url>', 'cache: file:///dir, http(s)://…, s3://bucket?endpoint=…&region=…')
    .requiredOption('--secret-key <file>', 'NAME.secret from relonix keygen or nix-store --generate-binary-cache-key')
    .option('--as-nix <path>', "publish this path's closure and record it as the Nix for this system in relonix.json (it must have bin/nix-store)")
    .option(
      '--compression <c>',
      'auto, zstd, xz or none. auto: zstd when the host has a zstd that works, else xz when it has one, else none. zstd decompresses about ' +
        'five times faster than xz, for NARs about a quarter bigger, and Nix reads it; compressing needs the host zstd/xz ' +
        '(restoring does not). NARs are staged in $TMPDIR, not held in memory',
      'auto',
    )
    .option('--jobs <n>', 'parallel uploads', countOption('--jobs'), 4)
    .option('--header <h>', HEADER_HELP, repeatable, [] as string[])
    .option('--nix-store <bin>', 'nix-store to read the database with (default: the prefix Nix, else PATH)')
    .option('--quiet', 'print only the summary')
    .argument('[paths...]', 'store paths to publish')
    .addHelpText('after', HELP)
    .action(async (paths: string[], o: Opts) => {
      const log = (m: string) => (o.quiet && !m.startsWith('notice') ? undefined : process.stderr.write(`${m}\n`));
      const t0 = Date.now();
      const { publishFromPrefix } = await import('../cache/publish-prefix.ts');
      const r = await publishFromPrefix({
        layout: layout(o.prefix),
        to: o.to,
        secretKey: o.secretKey,
        paths,
        asNix: o.asNix,
        compression: o.compression,
        jobs: o.jobs,
        headers: o.header,
        nixStore: o.nixStore,
        log,
      });
      process.stdout.write(
        `published ${r.uploaded} NAR${r.uploaded === 1 ? '' : 's'} (${r.narBytes} bytes, compression ${r.compression}), skipped ${r.skipped} already in ${redactUrl(o.to)}, ${r.closure} paths in the closure, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
      );
      if (r.record) process.stdout.write(`recorded ${r.record.nix} for ${r.record.system} in relonix.json\n`);
    });
}
