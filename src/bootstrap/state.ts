import type { Layout } from '../store/layout.ts';
import { readJson, writeFileAtomic } from '../util/fs.ts';

/** What a bootstrap has finished, so a re-run after a kill starts at the first unfinished stage. */
export interface StageRecord {
  doneAt: string;
  /** the inputs the stage ran with; a change of input makes the stage (and later ones) run again */
  key?: string;
  detail?: unknown;
}

export interface BootstrapState {
  version: 1;
  storeDir: string;
  stages: Record<string, StageRecord>;
  /** store path of the Nix the prefix uses now (profile and `relonix env`) */
  nix?: string;
  /** store path of the CA certificate bundle package */
  cacert?: string;
  /** where the active Nix came from: the tarball (stage 1) or a cache (restore or stage 2) */
  nixSource?: 'tarball' | 'cache';
}

export async function readState(l: Layout): Promise<BootstrapState> {
  const s = await readJson<BootstrapState>(l.stateFile);
  if (!s) return { version: 1, storeDir: l.storeDir, stages: {} };
  if (s.version !== 1) throw new Error(`${l.stateFile} has version ${String(s.version)}; this relonix reads version 1`);
  return s;
}

export async function writeState(l: Layout, s: BootstrapState): Promise<void> {
  await writeFileAtomic(l.stateFile, JSON.stringify(s, null, 2) + '\n');
}

export async function markDone(l: Layout, stage: string, rec: Omit<StageRecord, 'doneAt'> = {}): Promise<BootstrapState> {
  const s = await readState(l);
  s.stages[stage] = { doneAt: new Date().toISOString(), ...rec };
  await writeState(l, s);
  return s;
}
