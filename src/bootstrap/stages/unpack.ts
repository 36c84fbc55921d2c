// Stage "unpack": the verified tarball into the staging tree, its store paths relocated as they
// leave the tar stream (xz decompresses in its own process meanwhile), after a second space check
// now that its real size is known, refusing a tarball for another machine.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeUnpackedRelocation } from '../../store/relocate-tree.ts';
import { noSpace, RelonixError } from '../../util/errors.ts';
import { freeSpace, removeTree } from '../../util/fs.ts';
import { progressText } from '../../util/progress.ts';
import { type BootstrapContext, detailOf, type EarlyUnpack, recorded, type Stage, type UnpackDetail, type Unpacking } from '../stage.ts';
import { TARBALL_STORE } from '../tarball.ts';
import type { UnpackOptions } from '../untar.ts';
import { estimateNeed } from './preflight.ts';
import { RELOCATE_WORK } from './relocate.ts';

/** The tarball's registration records, kept beside the state for the register stage. */
export const TARBALL_REGINFO = 'tarball.reginfo';

/** The bytes read are not the ones the fetch stage verified: the file changed since. */
export function changedSinceFetch(tarball: string, fetched: string, read: string): RelonixError {
  return new RelonixError(`${tarball} changed after it was fetched: it was verified as sha256 ${fetched}, and now reads as ${read}`, {
    kind: 'integrity',
    hint: 'run the same command again: it fetches and verifies the tarball again',
  });
}

/** A release tarball built for another machine than this one. */
export function tarballForOtherSystem(system: string, host: string): RelonixError {
  return new RelonixError(`the tarball is built for ${system} but this machine is ${host}`, {
    kind: 'preflight',
    hint: `use the ${host} tarball (nix-<version>-${host}.tar.xz)`,
  });
}

/**
 * Unpacks the tarball (from the file, or as it `arriving`) into a new staging tree, its store paths
 * relocated as they are written: nothing of an earlier unpack or relocation applies.
 */
async function unpackAfresh(
  ctx: BootstrapContext,
  tarball: string,
  needBytes: number,
  progress: (text: string) => void,
  arriving?: UnpackOptions['arriving'],
): Promise<Unpacking> {
  const l = ctx.layout;
  await removeTree(l.stagingDir);
  await removeTree(path.join(l.relonixDir, RELOCATE_WORK));
  // loaded when the stage runs: a finished prefix answers its no-op re-run without tar, xz and the ELF engine
  const [{ unpackTarball }, { ownStoreRelocator }, { StreamRelocation }] = await Promise.all([
    import('../untar.ts'),
    import('../../elf/index.ts'),
    import('../../store/relocate-stream.ts'),
  ]);
  // the extractor gives each file's buffer away: ELF files are edited where they lie
  const relocation = new StreamRelocation({ from: TARBALL_STORE, to: l.storeDir, relocateElf: ownStoreRelocator });
  const r = await unpackTarball({ tarball, arriving, dest: l.stagingDir, relocation, needBytes, onProgress: (p) => progress(progressText(p)) });
  return { r, relocation };
}

/** Starts unpacking a tarball of `size` bytes from its download's bytes as they arrive. */
export function startEarlyUnpack(ctx: BootstrapContext, tarball: string, bytes: AsyncIterable<Buffer>, size: number): EarlyUnpack {
  const early: Partial<EarlyUnpack> = {};
  const done = unpackAfresh(ctx, tarball, estimateNeed(size, true), (t) => early.show?.(t), { bytes, size });
  // awaited by the unpack stage; a failure there means unpacking from the file
  done.catch(() => {});
  return Object.assign(early, { done });
}

export const unpackStage: Stage<'unpack'> = {
  name: 'unpack',
  title: 'Unpack and relocate it',
  // the tarball is fetch's input, chained into this key
  inputs: () => null,
  // the tarball the fetch stage left (a download the user deleted, say): fetch it again
  lost: async (_ctx, s) => {
    const f = recorded(s, 'fetch');
    if (!f) return undefined;
    const st = await fs.stat(f.tarball).catch(() => undefined);
    return st?.isFile() && st.size === f.bytes ? undefined : 'fetch';
  },
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    const f = detailOf(s, 'fetch');
    const early = ctx.handoff?.unpack;
    if (ctx.handoff) ctx.handoff.unpack = undefined;
    if (early) early.show = progress;
    // an unpack that could not finish as the bytes arrived (the download started over, or fell
    // too far ahead) is done again from the file
    let u = await early?.done.catch(() => undefined);
    const asArrived = u !== undefined;
    if (!u) {
      const free = await freeSpace(l.prefix);
      const need = estimateNeed(f.bytes, true);
      if (free < need) throw noSpace(l.prefix, free, need);
      u = await unpackAfresh(ctx, f.tarball, need, progress);
    }
    const { r, relocation } = u;
    if (r.sha256 !== f.sha256) {
      // a download that no longer checks out goes, so the next run fetches it again
      if (f.tarball.startsWith(`${l.downloadsDir}/`)) await fs.rm(f.tarball, { force: true });
      throw changedSinceFetch(f.tarball, f.sha256, r.sha256 ?? 'nothing');
    }
    const { readTarballInfo } = await import('../tarball.ts');
    const info = await readTarballInfo(r.root);
    if (info.system !== ctx.host) {
      throw tarballForOtherSystem(info.system, ctx.host);
    }
    await writeUnpackedRelocation(path.join(l.relonixDir, RELOCATE_WORK), { results: relocation.results(), abandoned: [...relocation.abandoned] });
    await fs.copyFile(path.join(r.root, '.reginfo'), path.join(l.relonixDir, TARBALL_REGINFO));
    const detail: UnpackDetail = { root: r.root, version: info.version, system: info.system, nixPath: info.nixPath, cacertPath: info.cacertPath };
    return { detail, summary: `Nix ${info.version} for ${info.system}${asArrived ? ', unpacked as it downloaded' : ''}` };
  },
};
