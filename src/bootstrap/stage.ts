// What a stage is and what it may read: the contract between the engine (engine.ts), which runs the
// stages in order and records each, and the stages themselves (stages/), which never import the engine.
import type { Layout } from '../prefix/layout.ts';
import type { BootstrapState, StageName } from '../prefix/state.ts';
import type { StreamRelocation } from '../store/relocate-stream.ts';
import type { RelocateCounts } from '../store/relocate-tree.ts';
import type { UpstreamConfig } from '../translator/config.ts';
import { RelonixError } from '../util/errors.ts';
import type { UrlCredentials } from '../util/redact.ts';
import type { Unpacked } from './untar.ts';

/** What every stage may read: the prefix, the machine, and where the Nix comes from. */
export interface BootstrapContext {
  layout: Layout;
  host: string;
  /** the release tarball, unless the Nix comes from the caches alone */
  tarball?: TarballSource;
  /** the most bytes a download of it may take */
  maxDownloadBytes: number;
  /** the caches without the credentials their URLs carried: what nix.conf, the state and Nix get */
  caches: string[];
  /** those credentials: only ever written to the prefix's netrc (mode 0600) */
  credentials: UrlCredentials[];
  trustedKeys: string[];
  /** the caches whose binaries the translator serves for this store dir (src/translator/) */
  upstreams: UpstreamConfig[];
  /** work a stage began in this run for the next one to finish */
  handoff?: Handoff;
}

/** Work handed from one stage to the next within a run (none survives the process). */
export interface Handoff {
  /** the unpack the fetch stage fed with the tarball's bytes as they arrived */
  unpack?: EarlyUnpack;
}

/** What an unpack made: the tree, and what relocation did as it wrote it. */
export interface Unpacking {
  r: Unpacked;
  relocation: StreamRelocation;
}

/**
 * An unpack the fetch stage started while the tarball was arriving, for the unpack stage to finish:
 * its progress goes wherever `show` is pointed. What it made is trusted only once the unpack stage
 * has compared the sha256 of the bytes it read with the fetch stage's.
 */
export interface EarlyUnpack {
  done: Promise<Unpacking>;
  show?: (text: string) => void;
}

export interface TarballSource {
  url: string;
  /** the checksum the user gave (--sha256) */
  sha256?: string;
  /** a local tarball's own sha256, read when the bootstrap starts: what it is, whatever its path */
  content?: string;
}

/** The top-level fields of the state a stage may set (besides its own record). */
export type StatePatch = Partial<Pick<BootstrapState, 'nix' | 'cacert' | 'nixSource' | 'storeOwned' | 'replaces' | 'sqliteJournal' | 'registered'>>;

/**
 * What the default profile must lose when a stage makes `next` the prefix's Nix and CA bundle: the
 * ones the state named until now, and those an earlier stage named and verify has not yet taken out.
 */
export function replacedBy(s: BootstrapState, next: (string | undefined)[]): string[] | undefined {
  const old = [...(s.replaces ?? []), s.nix, s.cacert].filter((p): p is string => p !== undefined && !next.includes(p));
  return old.length ? [...new Set(old)] : undefined;
}

export interface StageResult<D = unknown> {
  summary: string;
  /** kept in the stage's record, for later stages and for relonix status */
  detail?: D;
  patch?: StatePatch;
}

/** A stage, typed by its name: what it records is StageDetails[K], which later stages read as such. */
export interface Stage<K extends StageName = StageName> {
  name: K;
  title: string;
  /**
   * The stage's own inputs, from the command line and the host alone: its key chains them to the
   * previous stage's key, all keys decided before the first stage runs (engine.ts planKeys)
   */
  inputs(ctx: BootstrapContext): unknown;
  run(ctx: BootstrapContext, s: BootstrapState, progress: (text: string) => void): Promise<StageResult<StageDetails[K]>>;
  /**
   * When what this stage reads of an earlier stage's work is gone (a deleted download, a removed
   * staging tree), that stage: the run starts there again. Asked of the stage a run would start at.
   */
  lost?(ctx: BootstrapContext, s: BootstrapState): Promise<StageName | undefined>;
}

/**
 * What the tarball is: its sha256 when given (the same bytes from another mirror change nothing), a
 * local file's content, else its URL (whose .sha256 is read at fetch time).
 */
export function tarballKey(t: TarballSource): string {
  const sha = t.sha256 ?? t.content;
  return sha ? `sha256:${sha}` : `url:${t.url}`;
}

/**
 * What an earlier stage recorded, as that stage typed it, or undefined when it has no record. The
 * state file is JSON: this is the one place its records are given their types back.
 */
export function recorded<K extends StageName>(s: BootstrapState, stage: K): StageDetails[K] | undefined {
  return s.stages[stage]?.detail as StageDetails[K] | undefined;
}

/** A stage's record that a later stage reads is missing from the state file (edited, or from another relonix). */
export function stageNotRecorded(stage: StageName): RelonixError {
  return new RelonixError(`the ${stage} stage has no record in the state file`, { hint: 'run relonix bootstrap again: it redoes the stages from there' });
}

/** The record of an earlier stage that this one reads, or an error saying how to recover. */
export function detailOf<K extends StageName>(s: BootstrapState, stage: K): NonNullable<StageDetails[K]> {
  const d = recorded(s, stage);
  if (d === undefined || d === null) {
    throw stageNotRecorded(stage);
  }
  return d;
}

// What each stage records for the next ones to read (detailOf), by stage name.
export interface StageDetails {
  preflight: { freeBytes: number; needBytes: number; fsType?: string } | undefined;
  fetch: FetchDetail;
  unpack: UnpackDetail;
  relocate: { paths: number } & RelocateCounts;
  configure: undefined;
  restore: { nix: string; cacert?: string; paths: number };
  register: undefined;
  verify: VerifyResult;
  'cache-nix': { nix: string };
}

/** What verify found: the Nix's version, its check build, and that its libraries all come from the store. */
export interface VerifyResult {
  version: string;
  checkOutput: string;
  libraries: number;
  interpreter: string;
}

/** The fetch stage's record: the verified tarball. */
export interface FetchDetail {
  tarball: string;
  sha256: string;
  bytes: number;
}

/** The unpack stage's record: the unpacked tree and what its install script names. */
export interface UnpackDetail {
  root: string;
  version: string;
  system: string;
  /** store paths as the tarball names them (under its own store dir) */
  nixPath: string;
  cacertPath?: string;
}
