// What a prefix holds: the stages done, the active Nix, the store's size and what relocation left
// behind; `relonix status` prints it.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readReport } from '../store/relocate-tree.ts';
import { exists } from '../util/fs.ts';
import type { Layout } from './layout.ts';
import { databaseStatus } from './sqlite-journal.ts';
import { isBootstrapped, readState, STAGES } from './state.ts';

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

export async function inspectPrefix(l: Layout) {
  const s = await readState(l);
  const report = await readReport(l.reportFile);
  const store = await treeSize(l.storeDir);
  const stages = Object.entries(s.stages)
    .sort(([a], [b]) => STAGES.indexOf(a as never) - STAGES.indexOf(b as never))
    .map(([name, r]) => ({ name, doneAt: r.doneAt }));
  const byFile = new Map<string, number>();
  for (const h of report?.hits ?? []) byFile.set(h.file, (byFile.get(h.file) ?? 0) + 1);
  return {
    prefix: l.prefix,
    storeDir: l.storeDir,
    bootstrapped: await isBootstrapped(l, s),
    nix: s.nix ?? null,
    nixSource: s.nixSource ?? null,
    cacert: s.cacert ?? null,
    stages,
    store: { paths: store.paths, bytes: store.bytes },
    database: await databaseStatus(l, s.sqliteJournal),
    relocation: report
      ? {
          counts: report.counts,
          unrewritableFiles: [...byFile.entries()].map(([file, count]) => ({ file, count })),
          reportFile: l.reportFile,
        }
      : null,
  };
}
