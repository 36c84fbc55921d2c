import { type Command, Option } from 'commander';
import { durationOption, HEADER_HELP, repeatable } from './options.ts';

const HELP = `
What stays: the closure (References) of every store path in --keep, of the Nix and CA bundle
relonix.json names for each system (unless --drop-nix SYSTEM), and of every narinfo younger than
--grace; and every object younger than --grace. A publish in progress, here or on another host,
uploads its NARs first and its narinfos last: the grace period is what keeps its NARs from being
taken for garbage, without a lock across hosts. Everything else goes: narinfos first, then NARs.

Refused, with nothing removed: a keep file that names nothing the cache holds (an empty file, only
comments, a typo, paths of another store dir), and (without --yes) a gc that would remove more
than half of the cache's paths: the summary says how much. A file cache is never left through a
symlink, and only its regular files are removed; anything else is listed as left alone.

Examples:
  relonix cache gc --to file:///persist/cache --keep roots.txt --dry-run
  relonix cache gc --to s3://bucket?region=eu-west-1 --keep roots.txt --grace 1d
  relonix cache gc --to file:///persist/cache --keep roots.txt --drop-nix x86_64-linux --yes`;

interface Opts {
  to: string;
  keep: string;
  dryRun?: boolean;
  grace: number;
  yes?: boolean;
  dropNix: string[];
  header: string[];
}

export function register(program: Command): void {
  const cache = program.command('cache').description('maintain a binary cache');
  cache
    .command('gc')
    .description('remove narinfos and NARs outside the closure of the kept store paths')
    .requiredOption('--to <url>', 'cache: file:///dir or s3://bucket?endpoint=…')
    .requiredOption('--keep <file>', 'file listing the store paths to keep, one per line')
    .option('--dry-run', 'only list what would be removed')
    .addOption(
      new Option('--grace <duration>', 'never remove an object younger than this: seconds, or 90s, 30m, 1h, 2d')
        .default(3600, '1h')
        .argParser(durationOption('--grace')),
    )
    .option('--yes', 'remove even when that is more than half of the cache')
    .option('--drop-nix <system>', 'also remove the Nix relonix.json names for SYSTEM, e.g. x86_64-linux (repeatable)', repeatable, [] as string[])
    .option('--header <h>', HEADER_HELP, repeatable, [] as string[])
    .addHelpText('after', HELP)
    .action(async (o: Opts) => {
      const [{ openTarget }, { gcCache, readKeepFile, removesMost, summary }, { duration }] = await Promise.all([
        import('../cache/targets.ts'),
        import('../cache/gc.ts'),
        import('../util/format.ts'),
      ]);
      const say = (m: string) => process.stderr.write(`${m}\n`);
      const keep = await readKeepFile(o.keep);
      const r = await gcCache(openTarget(o.to, { headers: o.header }), {
        keep,
        keepFile: o.keep,
        dryRun: o.dryRun,
        graceSeconds: o.grace,
        dropNix: o.dropNix,
        yes: o.yes,
        log: say,
      });
      for (const m of r.missingRoots) say(`warning: ${o.keep}: ${m.path}: ${m.why}`);
      for (const x of r.leftAlone) say(`left alone: ${x.key} (${x.notRegular})`);
      const verb = o.dryRun ? 'would remove' : 'removed';
      for (const k of [...r.removedNarInfos, ...r.removedNars]) process.stdout.write(`${verb} ${k}\n`);
      const young = r.young ? `; ${r.young} object${r.young === 1 ? '' : 's'} younger than ${duration(o.grace)} kept` : '';
      process.stdout.write(`kept ${r.kept.length} paths; ${verb} ${summary(r)}${young}\n`);
      if (o.dryRun && removesMost(r)) say('note: that is more than half of the cache: without --dry-run, gc removes it only with --yes');
    });
}
