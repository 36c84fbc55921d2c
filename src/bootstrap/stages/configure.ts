import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCgroupLimits } from '../../host/cgroup.ts';
import { planParallelism } from '../../host/parallelism.ts';
import { saveNetrcCredentials } from '../../net/netrc.ts';
import { writeEnvScripts, writeWrappers } from '../../prefix/environment.ts';
import type { Layout } from '../../prefix/layout.ts';
import { buildHookSetting, mergeNixConf, type NixConfSettings, nixConfBlock } from '../../prefix/nix-conf.ts';
import { translatorSettings } from '../../translator/config.ts';
import { setupTranslator } from '../../translator/setup.ts';
import { writeFileAtomic } from '../../util/fs.ts';
import { detailOf, type Stage } from '../stage.ts';
import { moved } from './relocate.ts';

export async function applyConfigure(l: Layout, input: NixConfSettings, nix?: string, cacert?: string): Promise<{ confFile: string }> {
  let existing: string | undefined;
  try {
    existing = await fs.readFile(l.confFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // the same reading relonix build makes: a host that kills builds for memory gets a max-jobs it can hold
  const parallelism = input.parallelism ?? planParallelism(await readCgroupLimits(), os.availableParallelism());
  const translator = input.translator ?? (await translatorSettings(l));
  const buildHook = await buildHookSetting(l, nix, existing ?? '');
  const next = mergeNixConf(existing, nixConfBlock({ ...input, parallelism, translator, buildHook }));
  if (next !== existing) await writeFileAtomic(l.confFile, next);
  await writeEnvScripts(l, nix, cacert);
  if (nix) await writeWrappers(l, nix);
  await fs.mkdir(path.join(l.prefix, 'home'), { recursive: true });
  await fs.mkdir(l.logDir, { recursive: true });
  await fs.mkdir(path.dirname(l.profile), { recursive: true });
  return { confFile: l.confFile };
}

export const configureStage: Stage<'configure'> = {
  name: 'configure',
  title: 'Write nix.conf and the environment',
  // with a tarball, the profile scripts name its Nix; a cache-only restore runs this before the
  // restore, because the first Nix to open the new database must already read use-sqlite-wal =
  // false (a database made in WAL mode cannot be opened without it)
  inputs: (ctx, s) =>
    ctx.tarball
      ? { caches: ctx.caches, keys: ctx.trustedKeys, upstreams: ctx.upstreams, nix: detailOf(s, 'unpack').nixPath }
      : { caches: ctx.caches, keys: ctx.trustedKeys, upstreams: ctx.upstreams },
  run: async (ctx, s) => {
    const l = ctx.layout;
    // the translator's files first: the nix.conf block names its URL and key
    const { notes } = await setupTranslator(l, ctx.upstreams);
    const input = { caches: ctx.caches, trustedKeys: ctx.trustedKeys };
    // what the caches' URLs carried goes where only the user reads it, and Nix looks ($NIX_CONF_DIR/netrc)
    await saveNetrcCredentials(l.netrcFile, ctx.credentials);
    if (ctx.tarball) {
      const u = detailOf(s, 'unpack');
      await applyConfigure(l, input, moved(u.nixPath, l.storeDir), u.cacertPath && moved(u.cacertPath, l.storeDir));
    } else {
      await applyConfigure(l, input);
    }
    return { summary: [path.relative(l.prefix, l.confFile), ...notes.map((n) => `warning: ${n}`)].join('\n') };
  },
};
