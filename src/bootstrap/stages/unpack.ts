// Stage "unpack": the verified tarball into the staging tree, after a second space check now that
// its real size is known, refusing a tarball for another machine.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RelonixError } from '../../util/errors.ts';
import { mib } from '../../util/format.ts';
import { removeTree } from '../../util/fs.ts';
import { detailOf, type FetchDetail, type Stage, type UnpackDetail } from '../stage.ts';
import { progressText } from '../ui.ts';
import { MARGIN, UNPACK_FACTOR } from './preflight.ts';
import { RELOCATE_WORK } from './relocate.ts';

/** The tarball's registration records, kept beside the state for the register stage. */
export const TARBALL_REGINFO = 'tarball.reginfo';

export const unpackStage: Stage = {
  name: 'unpack',
  title: 'Unpack it',
  inputs: (_ctx, s) => ({ sha256: detailOf<FetchDetail>(s, 'fetch').sha256 }),
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    const f = detailOf<FetchDetail>(s, 'fetch');
    const st = await fs.statfs(l.prefix);
    const free = Number(st.bavail) * Number(st.bsize);
    const need = f.bytes * UNPACK_FACTOR + MARGIN;
    if (free < need) {
      throw new RelonixError(`${l.prefix} has ${mib(free)} free; the unpacked closure needs about ${mib(need)}`, {
        kind: 'preflight',
        hint: 'free some space or choose a prefix on a bigger filesystem (--prefix DIR)',
      });
    }
    // a different tarball: nothing of an earlier unpack or relocation applies
    await removeTree(l.stagingDir);
    await removeTree(path.join(l.relonixDir, RELOCATE_WORK));
    // loaded when the stage runs: a finished prefix answers its no-op re-run without tar and xz
    const { unpackTarball } = await import('../untar.ts');
    const { readTarballInfo } = await import('../tarball.ts');
    const { root } = await unpackTarball({ tarball: f.tarball, dest: l.stagingDir, onProgress: (p: unknown) => progress(progressText(p)) });
    const info = await readTarballInfo(root);
    if (info.system !== ctx.host) {
      throw new RelonixError(`the tarball is built for ${info.system} but this machine is ${ctx.host}`, {
        kind: 'preflight',
        hint: `use the ${ctx.host} tarball (nix-<version>-${ctx.host}.tar.xz)`,
      });
    }
    await fs.copyFile(path.join(root, '.reginfo'), path.join(l.relonixDir, TARBALL_REGINFO));
    const detail: UnpackDetail = { root, version: info.version, system: info.system, nixPath: info.nixPath, cacertPath: info.cacertPath };
    return { detail, summary: `Nix ${info.version} for ${info.system}` };
  },
};
