import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, errnoWords, errorMessage, RelonixError } from '../util/errors.ts';
import { exists, writeFileAtomic } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { shQuote } from '../util/shell.ts';
import { DEFAULT_PREFIX, type Layout } from './layout.ts';
import type { JournalRecord } from './sqlite-journal.ts';

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
  /**
   * This prefix, told apart from any other (another host's prefix at the same path included): a
   * builder whose state has ours is this very prefix.
   */
  id?: string;
  storeDir: string;
  /** the store dir was empty when this prefix took it: what it holds now is this prefix's */
  storeOwned?: boolean;
  /** made by relonix demo, which bootstraps no other prefix */
  madeBy?: 'demo';
  stages: Partial<Record<StageName, StageRecord>>;
  /** store path of the Nix the prefix uses now (profile and `relonix env`) */
  nix?: string;
  /** store path of the CA certificate bundle package */
  cacert?: string;
  /** where the active Nix came from: the tarball (relocated), or a cache (the restore or cache-nix stage) */
  nixSource?: 'tarball' | 'cache';
  /** the Nix and CA bundle the default profile held before a re-bootstrap: verify takes them out of it */
  replaces?: string[];
  /**
   * the journal of the Nix database, chosen for its filesystem before the database was made; none
   * in a prefix bootstrapped before relonix chose (its database keeps the rollback journal)
   */
  sqliteJournal?: JournalRecord;
  /**
   * The store paths the stage that made `nix` the prefix's Nix registered (register or restore):
   * verify checks them beside its other checks, then drops the list
   */
  registered?: string[];
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
  let text: string;
  try {
    text = await fs.readFile(l.stateFile, 'utf8');
  } catch (e) {
    const code = errnoCode(e);
    // ENOTDIR: a file where a directory of the prefix would be: no state there either
    if (code === 'ENOENT' || code === 'ENOTDIR') return emptyState(l);
    if (code === 'EACCES' || code === 'EPERM') {
      throw stateNotReadable(l, e);
    }
    throw brokenState(l, errnoWords(e));
  }
  let s: unknown;
  try {
    s = JSON.parse(text);
  } catch (e) {
    throw brokenState(l, `it is not valid JSON (${errorMessage(e)})`);
  }
  const why = stateShapeProblem(s);
  if (why) throw brokenState(l, why);
  return s as BootstrapState;
}

/** Pure: what is wrong with a parsed state file, as far as every reader relies on it. */
export function stateShapeProblem(s: unknown): string | undefined {
  if (!s || typeof s !== 'object' || Array.isArray(s)) return 'it is not a JSON object';
  const o = s as Record<string, unknown>;
  if (o.version !== 1) return `it has version ${JSON.stringify(o.version) ?? 'none'}; this relonix reads version 1`;
  if (typeof o.storeDir !== 'string' || !path.isAbsolute(o.storeDir)) return 'it names no absolute store dir';
  if (!o.stages || typeof o.stages !== 'object' || Array.isArray(o.stages)) return 'it has no record of stages';
  if (o.nix !== undefined && typeof o.nix !== 'string') return 'its active Nix is not a path';
  return undefined;
}

/** A state file this user may not read: the prefix is someone else's. */
export function stateNotReadable(l: Layout, e: unknown): RelonixError {
  return new RelonixError(`cannot read the prefix's state file ${l.stateFile}: ${errnoWords(e)}`, {
    kind: 'preflight',
    hint: 'run relonix as the user that owns the prefix, or choose a prefix of your own (--prefix DIR)',
    cause: e,
  });
}

/** A state file relonix cannot read: which one, why, and the two ways out. */
export function brokenState(l: Layout, why: string): RelonixError {
  return new RelonixError(`the prefix's state file ${l.stateFile} is damaged: ${why}`, {
    hint: `move it aside (mv ${shQuote(l.stateFile)} ${shQuote(`${l.stateFile}.broken`)}) and run relonix bootstrap again, which redoes every stage; or remove the prefix with relonix uninstall --prefix ${shQuote(l.prefix)}`,
  });
}

export async function writeState(l: Layout, s: BootstrapState): Promise<void> {
  await writeFileAtomic(l.stateFile, `${JSON.stringify(s, null, 2)}\n`);
}

/**
 * A state with nothing done. Starting over, a prefix keeps its identity and its maker, and a store
 * dir it owned stays its own.
 */
export function emptyState(l: Layout, keep: Partial<Pick<BootstrapState, 'id' | 'madeBy' | 'storeDir' | 'storeOwned'>> = {}): BootstrapState {
  const s: BootstrapState = { version: 1, id: keep.id ?? newPrefixId(), storeDir: l.storeDir, stages: {} };
  if (keep.madeBy) s.madeBy = keep.madeBy;
  if (keep.storeOwned && keep.storeDir === l.storeDir) s.storeOwned = true;
  return s;
}

function newPrefixId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The one meaning of "has a usable Nix": the state names the prefix's Nix and it is still there (a
 * wiped store under a surviving state file has none). What every command that runs it asks.
 */
export async function usableNix(s: BootstrapState): Promise<{ nix: string; cacert?: string } | undefined> {
  return s.nix && (await exists(path.join(s.nix, 'bin', 'nix'))) ? { nix: s.nix, cacert: s.cacert } : undefined;
}

/**
 * The one meaning of "bootstrapped": a usable Nix, verified for this store dir. What a re-run of
 * bootstrap and relonix status ask.
 */
export async function isBootstrapped(l: Layout, s: BootstrapState): Promise<boolean> {
  return s.storeDir === l.storeDir && !!s.stages.verify && (await usableNix(s)) !== undefined;
}

/**
 * The one way "this prefix has no Nix" is said, by every command that needs one: `and` says what
 * that means for the command, `alsoHint` adds to the fix (bootstrapping the prefix).
 */
export function noNix(prefix: string, and?: string, alsoHint?: string): RelonixError {
  const flag = prefix === DEFAULT_PREFIX ? '' : ` --prefix ${shQuote(prefix)}`;
  return new RelonixError(`no Nix is installed in ${prefix} yet${and ? `, ${and}` : ''}`, {
    kind: 'failure',
    hint: `run relonix bootstrap${flag} first${alsoHint ? `; ${alsoHint}` : ''}`,
  });
}

/**
 * The prefix's identity, given one (under the prefix's lock) when its state predates identities;
 * none for a prefix that has no state yet.
 */
export async function prefixId(l: Layout): Promise<string | undefined> {
  if (!(await exists(l.stateFile))) return undefined;
  const s = await readState(l);
  if (s.id) return s.id;
  return withLock(l.lockFile, { what: `giving ${l.prefix} an identity` }, async () => {
    const now = await readState(l);
    now.id ??= newPrefixId();
    await writeState(l, now);
    return now.id;
  });
}
