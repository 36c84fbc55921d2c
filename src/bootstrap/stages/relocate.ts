// Stage "relocate": the unpacked closure moved from the tarball's store dir to the prefix's. The
// unpack stage relocated the paths as it wrote them, so this mostly moves them into the store; a
// path it left (a file too big to hold in memory) goes through the tree relocator here, ELF files
// through the ELF engine, links and text by the rewrite rules. What cannot move is reported.
import path from 'node:path';
import { rewriteLinkTarget } from '../../store/relocate-text.ts';
import { readUnpackedRelocation, relocateTree, writeReport } from '../../store/relocate-tree.ts';
import { exists } from '../../util/fs.ts';
import { detailOf, recorded, type Stage } from '../stage.ts';
import { TARBALL_STORE } from '../tarball.ts';

/** Under the prefix's relonix dir: per-path markers and temporaries of the relocation. */
export const RELOCATE_WORK = 'relocate';

/** A store path of the tarball, as it is named in the prefix's store. */
export const moved = (p: string, to: string) => rewriteLinkTarget(p, TARBALL_STORE, to) ?? p;

export const relocateStage: Stage<'relocate'> = {
  name: 'relocate',
  title: 'Relocate the closure',
  inputs: (ctx) => ({ from: TARBALL_STORE, to: ctx.layout.storeDir }),
  // every path must be in the staging tree, in the store already, or done by an earlier run
  lost: async (ctx, s) => {
    const l = ctx.layout;
    const u = recorded(s, 'unpack');
    const work = path.join(l.relonixDir, RELOCATE_WORK);
    const r = await readUnpackedRelocation(work).catch(() => undefined);
    if (!u || !r) return 'unpack';
    const here = async (b: string) => (await exists(path.join(u.root, 'store', b))) || (await exists(path.join(l.storeDir, b)));
    for (const p of r.results) if (!(await here(p.basename))) return 'unpack';
    for (const b of r.abandoned) if (!(await here(b)) && !(await exists(path.join(work, 'paths', `${b}.json`)))) return 'unpack';
    return undefined;
  },
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    const u = detailOf(s, 'unpack');
    const workDir = path.join(l.relonixDir, RELOCATE_WORK);
    const unpacked = await readUnpackedRelocation(workDir);
    const { storeRelocator } = await import('../../elf/index.ts');
    const r = await relocateTree({
      sourceDir: path.join(u.root, 'store'),
      from: TARBALL_STORE,
      to: l.storeDir,
      workDir,
      relocateElf: storeRelocator,
      known: new Map(unpacked?.results.map((p) => [p.basename, p])),
      onPath: (p, i, n) => progress(`${i}/${n} ${p.basename}`),
    });
    await writeReport(l.reportFile, { from: TARBALL_STORE, to: l.storeDir, counts: r.counts, hits: r.paths.flatMap((p) => p.hits) });
    const c = r.counts;
    return {
      detail: { paths: r.paths.length, ...c },
      summary: `${r.paths.length} paths to ${l.storeDir}: ${c.elfPatched} ELF patched, ${c.symlinks} symlinks, ${c.textFiles} text files, ${c.binaryFiles ? `${c.binaryFiles} binary files rewritten in place, ` : ''}${c.unrewritable} references left in binary data`,
    };
  },
};
