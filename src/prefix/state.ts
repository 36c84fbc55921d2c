import path from 'node:path';
import { exists, readJson, writeFileAtomic } from '../util/fs.ts';
import type { Layout } from './layout.ts';

/**
 * Every stage a bootstrap can record, in the order they run: a tarball bootstrap runs preflight to
 * verify (and cache-nix with a cache), a cache-only one preflight, configure, restore, verify.
 */
export const STAGES = ['preflight', 'fetch', 'unpack', 'relocate', 'configure', 'restore', 'register', 'verify', 'cache-nix'] as const;
export type StageName = (typeof STAGES)[number];

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
  stages: Partial<Record<StageName, StageRecord>>;
  /** store path of the Nix the prefix uses now (profile and `relonix env`) */
  nix?: string;
  /** store path of the CA certificate bundle package */
  cacert?: string;
  /** where the active Nix came from: the tarball (relocated), or a cache (the restore or cache-nix stage) */
  nixSource?: 'tarball' | 'cache';
  /** what the last bootstrap was asked to bootstrap from: another host is bootstrapped the same way */
  source?: BootstrapSource;
}

export interface BootstrapSource {
  /** the tarball's URL or local path, when it came from a tarball */
  url?: string;
  sha256?: string;
  caches: string[];
  trustedKeys: string[];
}

export async function readState(l: Layout): Promise<BootstrapState> {
  const s = await readJson<BootstrapState>(l.stateFile);
  if (!s) return emptyState(l);
  if (s.version !== 1) throw new Error(`${l.stateFile} has version ${String(s.version)}; this relonix reads version 1`);
  return s;
}

export async function writeState(l: Layout, s: BootstrapState): Promise<void> {
  await writeFileAtomic(l.stateFile, `${JSON.stringify(s, null, 2)}\n`);
}

export function emptyState(l: Layout): BootstrapState {
  return { version: 1, storeDir: l.storeDir, stages: {} };
}

/**
 * The one meaning of "bootstrapped": a Nix for this store dir was verified, and it is still there
 * (a wiped store under a surviving state file is not bootstrapped).
 */
export async function isBootstrapped(l: Layout, s: BootstrapState): Promise<boolean> {
  return s.storeDir === l.storeDir && !!s.nix && !!s.stages.verify && (await exists(path.join(s.nix, 'bin', 'nix')));
}
