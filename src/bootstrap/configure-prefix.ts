// A prefix configured for its Nix: nix.conf's managed block merged in, the environment scripts, the
// wrappers and the directories Nix expects. The configure stage runs it, and restore and cache-nix
// again once they have made another Nix the prefix's.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCgroupLimits } from '../host/cgroup.ts';
import { planParallelism } from '../host/parallelism.ts';
import { writeEnvScripts, writeWrappers } from '../prefix/environment.ts';
import type { Layout } from '../prefix/layout.ts';
import { buildHookSetting, mergeNixConf, type NixConfSettings, nixConfBlock } from '../prefix/nix-conf.ts';
import { translatorSettings } from '../translator/config.ts';
import { writeFileAtomic } from '../util/fs.ts';

/** Idempotent: writes only what differs. The scripts and wrappers name `nix` and `cacert` when given. */
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
