import type { Command } from 'commander';
import { layout } from '../prefix/layout.ts';
import { mib } from '../util/format.ts';
import { PREFIX_HELP } from './options.ts';

export function register(program: Command): void {
  program
    .command('status')
    .description(
      "what is installed in the prefix: stages done, active Nix, store size, the database's journal (WAL or rollback) and why, relocation report, upstream and translator, build queue",
    )
    .option('--prefix <dir>', PREFIX_HELP)
    .option('--json', 'print one JSON object')
    .action(async (o: { prefix?: string; json?: boolean }) => {
      const l = layout(o.prefix);
      const { buildStatus } = await import('../build/status.ts');
      const { inspectPrefix } = await import('../prefix/inspect.ts');
      const { journalWords } = await import('../prefix/sqlite-journal.ts');
      const { translatorLines, translatorStatus } = await import('../translator/status.ts');
      const [st, build, translator] = await Promise.all([inspectPrefix(l), buildStatus(l), translatorStatus(l)]);
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ ...st, buildQueue: build.queue, buildParallelism: build.parallelism, translator }, null, 2)}\n`);
        return;
      }
      const { queue, parallelism: p } = build;
      const out: string[] = [];
      out.push(`prefix     ${st.prefix}`);
      out.push(`store      ${st.storeDir} (${st.store.paths} paths, ${mib(st.store.bytes)})`);
      out.push(`nix        ${st.nix ?? '(none yet: run relonix bootstrap)'}${st.nixSource ? ` (from the ${st.nixSource})` : ''}`);
      const db = st.database;
      out.push(`database   ${db.exists ? journalWords(db) : `none yet; a bootstrap makes it with the ${journalWords(db)}`}`);
      out.push(`stages     ${st.stages.length ? st.stages.map((x) => x.name).join(', ') : '(none)'}${st.bootstrapped ? '  ✓ bootstrapped' : ''}`);
      for (const x of st.stages) out.push(`  ${x.name.padEnd(10)} done ${x.doneAt}`);
      if (st.relocation) {
        const c = st.relocation.counts;
        const inPlace = c.binaryFiles ? `, ${c.binaryFiles} binary files rewritten in place` : '';
        out.push(
          `relocation ${c.files} files: ${c.elfPatched} ELF patched, ${c.symlinks} symlinks, ${c.textFiles} text files (${c.textRefs} references)${inPlace}`,
        );
        out.push(`  ${c.unrewritable} store references left in binary data of ${st.relocation.unrewritableFiles.length} files (they still name /nix/store):`);
        for (const f of st.relocation.unrewritableFiles.slice(0, 10)) out.push(`    ${f.file} (${f.count})`);
        if (st.relocation.unrewritableFiles.length > 10) out.push(`    … and ${st.relocation.unrewritableFiles.length - 10} more`);
        out.push(`  full list: ${st.relocation.reportFile}`);
      }
      out.push(...translatorLines(translator, mib));
      const limits = [`${p.cpus} CPUs`, ...(p.memoryBytes === undefined ? [] : [`a memory limit of ${mib(p.memoryBytes)}`])].join(' and ');
      out.push(`builds     max-jobs ${p.maxJobs}, cores ${p.cores} (${limits}, from the cgroup and CPU affinity)`);
      if (queue.pending.length) {
        out.push(`build queue ${queue.pending.length} built but not yet in the cache (the next relonix build pushes them first):`);
        for (const d of queue.pending.slice(0, 10)) out.push(`    ${d}`);
        if (queue.pending.length > 10) out.push(`    … and ${queue.pending.length - 10} more (${queue.dir}/queue)`);
      } else {
        out.push('build queue empty');
      }
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
