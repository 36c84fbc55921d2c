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
import { chooseJournal, type JournalRecord } from '../prefix/sqlite-journal.ts';
import { translatorSettings } from '../translator/config.ts';
import { writeFileAtomic } from '../util/fs.ts';

/** nix.conf's settings but the journal, and the journal the prefix's state records, if any. */
export type ConfigureInput = Omit<NixConfSettings, 'journal'> & { journal?: JournalRecord };

/**
 * Idempotent: writes only what differs. The scripts and wrappers name `nix` and `cacert` when given.
 * Returns the database's journal, for the state to record.
 */
export async function applyConfigure(l: Layout, input: ConfigureInput, nix?: string, cacert?: string): Promise<{ confFile: string; journal: JournalRecord }> {
  // before the first Nix makes the database: it is made with the journal nix.conf names from then on
  return writeConfiguration(l, input, await chooseJournal(l, input.journal), nix, cacert);
}

/**
 * applyConfigure with the database's journal already chosen: what may run while a Nix makes or
 * loads the database, since nothing here reads it (a database half made may show another journal).
 */
export async function writeConfiguration(
  l: Layout,
  input: ConfigureInput,
  journal: JournalRecord,
  nix?: string,
  cacert?: string,
): Promise<{ confFile: string; journal: JournalRecord }> {
  let existing: string | undefined;
  try {
    existing = await fs.readFile(l.confFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // side by side: each is a chain of small reads, and a bootstrap waits on this stage
  const [parallelism, translator, buildHook] = await Promise.all([
    // the same reading relonix build makes: a host that kills builds for memory gets a max-jobs it can hold
    input.parallelism ?? readCgroupLimits().then((c) => planParallelism(c, os.availableParallelism())),
    input.translator ?? translatorSettings(l),
    buildHookSetting(l, nix, existing ?? ''),
  ]);
  const next = mergeNixConf(existing, nixConfBlock({ ...input, parallelism, translator, buildHook, journal: journal.journal }));
  await Promise.all([
    next !== existing && writeFileAtomic(l.confFile, next),
    writeEnvScripts(l, nix, cacert),
    nix && writeWrappers(l, nix),
    ...[path.join(l.prefix, 'home'), l.logDir, path.dirname(l.profile)].map((d) => fs.mkdir(d, { recursive: true })),
  ]);
  return { confFile: l.confFile, journal };
}
