import type { Command } from 'commander';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { layout, type Layout } from '../store/layout.ts';
import { readState } from '../bootstrap/state.ts';
import { readReport } from '../store/relocate.ts';
import { mib } from '../bootstrap/preflight.ts';
import { exists } from '../util/fs.ts';

const ORDER = ['preflight', 'fetch', 'unpack', 'relocate', 'configure', 'restore', 'register', 'verify', 'cache-nix'];

async function treeSize(dir: string): Promise<{ bytes: number; paths: number }> {
  let bytes = 0;
  let paths = 0;
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    bytes += st.blocks * 512;
    if (st.isDirectory()) for (const n of await fs.readdir(p)) await walk(path.join(p, n));
  };
  if (!(await exists(dir))) return { bytes, paths };
  for (const n of await fs.readdir(dir)) {
    if (n === '.links') continue;
    paths++;
    await walk(path.join(dir, n));
  }
  return { bytes, paths };
}

export async function collectStatus(l: Layout) {
  const s = await readState(l);
  const report = await readReport(l.reportFile);
  const store = await treeSize(l.storeDir);
  const stages = Object.entries(s.stages)
    .sort(([a], [b]) => ORDER.indexOf(a) - ORDER.indexOf(b))
    .map(([name, r]) => ({ name, doneAt: r.doneAt }));
  const byFile = new Map<string, number>();
  for (const h of report?.hits ?? []) byFile.set(h.file, (byFile.get(h.file) ?? 0) + 1);
  return {
    prefix: l.prefix,
    storeDir: l.storeDir,
    bootstrapped: !!s.stages.verify || !!s.stages['cache-nix'],
    nix: s.nix ?? null,
    nixSource: s.nixSource ?? null,
    cacert: s.cacert ?? null,
    stages,
    store: { paths: store.paths, bytes: store.bytes },
    relocation: report
      ? {
          counts: report.counts,
          unrewritableFiles: [...byFile.entries()].map(([file, count]) => ({ file, count })),
          reportFile: l.reportFile,
        }
      : null,
  };
}

export function register(program: Command): void {
  program
    .command('status')
    .description('what is installed in the prefix: stages done, active Nix, store size, relocation report')
    .option('--prefix <dir>', 'the prefix (default $RELONIX_PREFIX, else /tmp/nix)')
    .option('--json', 'print one JSON object')
    .action(async (o: { prefix?: string; json?: boolean }) => {
      const st = await collectStatus(layout(o.prefix));
      if (o.json) {
        process.stdout.write(JSON.stringify(st, null, 2) + '\n');
        return;
      }
      const out: string[] = [];
      out.push(`prefix     ${st.prefix}`);
      out.push(`store      ${st.storeDir} (${st.store.paths} paths, ${mib(st.store.bytes)})`);
      out.push(`nix        ${st.nix ?? '(none yet: run relonix bootstrap)'}${st.nixSource ? ` (from the ${st.nixSource})` : ''}`);
      out.push(`stages     ${st.stages.length ? st.stages.map((x) => x.name).join(', ') : '(none)'}${st.bootstrapped ? '  ✓ bootstrapped' : ''}`);
      for (const x of st.stages) out.push(`  ${x.name.padEnd(10)} done ${x.doneAt}`);
      if (st.relocation) {
        const c = st.relocation.counts;
        out.push(`relocation ${c.files} files: ${c.elfPatched} ELF patched, ${c.symlinks} symlinks, ${c.textFiles} text files (${c.textRefs} references)`);
        out.push(`  ${c.unrewritable} store references left in binary data of ${st.relocation.unrewritableFiles.length} files (they still name /nix/store):`);
        for (const f of st.relocation.unrewritableFiles.slice(0, 10)) out.push(`    ${f.file} (${f.count})`);
        if (st.relocation.unrewritableFiles.length > 10) out.push(`    … and ${st.relocation.unrewritableFiles.length - 10} more`);
        out.push(`  full list: ${st.relocation.reportFile}`);
      }
      process.stdout.write(out.join('\n') + '\n');
    });
}
