import type { Command } from 'commander';
import path from 'node:path';
import { layout } from '../prefix/layout.ts';
import { readState } from '../prefix/state.ts';
import { nixSystem } from '../util/system.ts';
import { RelonixError } from '../util/errors.ts';
import { readSecretKeyFile } from '../cache/keys.ts';
import { openTarget } from '../cache/targets.ts';
import { queryClosure } from '../cache/nixstore.ts';
import { publishPaths } from '../cache/push.ts';
import { checkCompressionChoice, resolveCompression } from '../cache/compress.ts';

interface Opts {
  prefix?: string;
  to: string;
  secretKey: string;
  asNix?: string;
  compression: string;
  jobs: string;
  header: string[];
  nixStore?: string;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('publish')
    .description('sign and upload store paths (with their closures) to a binary cache; no path: the active Nix')
    .option('--prefix <dir>', 'relonix prefix (default $RELONIX_PREFIX or /tmp/nix)')
    .requiredOption('--to <url>', 'cache: file:///dir, http(s)://…, s3://bucket?endpoint=…&region=…')
    .requiredOption('--secret-key <file>', 'NAME.secret from relonix keygen or nix-store --generate-binary-cache-key')
    .option('--as-nix <path>', "publish this path's closure and record it as the Nix for this system in relonix.json")
    .option(
      '--compression <c>',
      'auto, zstd, xz or none. auto: zstd when the host has zstd, else xz when it has xz, else none. zstd decompresses about ' +
        'five times faster than xz, for NARs about a quarter bigger, and Nix reads it; compressing needs the host zstd/xz ' +
        '(restoring does not). NARs are staged in $TMPDIR, not held in memory',
      'auto',
    )
    .option('--jobs <n>', 'parallel uploads', '4')
    .option('--header <h>', "extra HTTP header 'Name: value' (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--nix-store <bin>', 'nix-store to read the database with (default: the prefix Nix, else PATH)')
    .option('--quiet', 'print only the summary')
    .argument('[paths...]', 'store paths to publish')
    .action(async (paths: string[], o: Opts) => {
      const l = layout(o.prefix);
      const state = await readState(l);
      const log = (m: string) => (o.quiet && !m.startsWith('notice') ? undefined : process.stderr.write(`${m}\n`));
      const choice = (() => {
        try {
          return checkCompressionChoice(o.compression);
        } catch (e) {
          throw new RelonixError((e as Error).message, { kind: 'usage', hint: 'use --compression auto, zstd, xz or none' });
        }
      })();
      // before any work: an explicit zstd on a host without zstd fails at once
      const compression = resolveCompression(choice, log);
      const key = await readSecretKeyFile(o.secretKey);
      const target = openTarget(o.to, { headers: o.header });
      let roots = paths.map((p) => path.resolve(p));
      let record: { system: string; nix: string; cacert?: string } | undefined;
      if (o.asNix) {
        roots = [path.resolve(o.asNix), ...roots];
        record = { system: nixSystem(), nix: path.resolve(o.asNix) };
      } else if (roots.length === 0) {
        if (!state.nix) {
          throw new RelonixError(`the prefix ${l.prefix} has no active Nix to publish`, { kind: 'usage', hint: 'run relonix bootstrap first, or name store paths to publish' });
        }
        roots = [state.nix, ...(state.cacert ? [state.cacert] : [])];
        record = { system: nixSystem(), nix: state.nix, cacert: state.cacert };
      }
      const records = await queryClosure({ layout: l, nix: state.nix, nixStore: o.nixStore }, roots);
      const t0 = Date.now();
      const r = await publishPaths({
        target,
        storeDir: l.storeDir,
        paths: records,
        key,
        compression,
        jobs: Number(o.jobs) || 4,
        record,
        log,
      });
      process.stdout.write(
        `published ${r.uploaded} NAR${r.uploaded === 1 ? '' : 's'} (${r.narBytes} bytes, compression ${r.compression}), skipped ${r.skipped} already in ${o.to}, ${records.length} paths in the closure, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
      );
      if (record) process.stdout.write(`recorded ${record.nix} for ${record.system} in relonix.json\n`);
    });
}
