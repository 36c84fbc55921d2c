import type { Command } from 'commander';
import { HEADER_HELP, repeatable } from './options.ts';

export function register(program: Command): void {
  const cache = program.command('cache').description('maintain a binary cache');
  cache
    .command('gc')
    .description('remove narinfos and NARs outside the closure of the kept store paths')
    .requiredOption('--to <url>', 'cache: file:///dir or s3://bucket?endpoint=…')
    .requiredOption('--keep <file>', 'file listing the store paths to keep, one per line')
    .option('--dry-run', 'only list what would be removed')
    .option('--header <h>', HEADER_HELP, repeatable, [] as string[])
    .action(async (o: { to: string; keep: string; dryRun?: boolean; header: string[] }) => {
      const [{ openTarget }, { gcCache, readKeepFile }] = await Promise.all([import('../cache/targets.ts'), import('../cache/gc.ts')]);
      const r = await gcCache(openTarget(o.to, { headers: o.header }), await readKeepFile(o.keep), {
        dryRun: o.dryRun,
        log: (m) => process.stderr.write(`${m}\n`),
      });
      for (const m of r.missingRoots) process.stderr.write(`warning: ${m} is not in the cache\n`);
      const verb = o.dryRun ? 'would remove' : 'removed';
      for (const k of [...r.removedNarInfos, ...r.removedNars]) process.stdout.write(`${verb} ${k}\n`);
      process.stdout.write(`kept ${r.kept.length} paths; ${verb} ${r.removedNarInfos.length} narinfos and ${r.removedNars.length} NARs\n`);
    });
}
