// Stage "relocate": the unpacked closure moved from the tarball's store dir to the prefix's, ELF
// files through the ELF engine, links and text by the tree relocator; what cannot move is reported.
import path from 'node:path';
import { rewriteLinkTarget } from '../../store/relocate-text.ts';
import { relocateTree, writeReport } from '../../store/relocate-tree.ts';
import { detailOf, type Stage, type UnpackDetail } from '../stage.ts';
import { TARBALL_STORE } from '../tarball.ts';

/** Under the prefix's relonix dir: per-path markers and temporaries of the relocation. */
export const RELOCATE_WORK = 'relocate';

/** A store path of the tarball, as it is named in the prefix's store. */
export const moved = (p: string, to: string) => rewriteLinkTarget(p, TARBALL_STORE, to) ?? p;

export const relocateStage: Stage = {
  name: 'relocate',
  title: 'Relocate the closure',
  inputs: (ctx) => ({ from: TARBALL_STORE, to: ctx.layout.storeDir }),
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    const u = detailOf<UnpackDetail>(s, 'unpack');
    const { storeRelocator } = await import('../../elf/index.ts');
    const r = await relocateTree({
      sourceDir: path.join(u.root, 'store'),
      from: TARBALL_STORE,
      to: l.storeDir,
      workDir: path.join(l.relonixDir, RELOCATE_WORK),
      relocateElf: storeRelocator,
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
