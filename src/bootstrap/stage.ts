// What a stage is and what it may read: the contract between the engine (engine.ts), which runs the
// stages in order and records each, and the stages themselves (stages/), which never import the engine.
import type { Layout } from '../prefix/layout.ts';
import type { BootstrapState, StageName } from '../prefix/state.ts';
import type { UpstreamConfig } from '../translator/config.ts';
import type { UrlCredentials } from '../util/redact.ts';

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
}

export interface TarballSource {
  url: string;
  /** the checksum the user gave (--sha256) */
  sha256?: string;
  /** a local tarball's own sha256, read when the bootstrap starts: what it is, whatever its path */
  content?: string;
}

/** The top-level fields of the state a stage may set (besides its own record). */
export type StatePatch = Partial<Pick<BootstrapState, 'nix' | 'cacert' | 'nixSource' | 'storeOwned' | 'replaces'>>;

/**
 * What the default profile must lose when a stage makes `next` the prefix's Nix and CA bundle: the
 * ones the state named until now, and those an earlier stage named and verify has not yet taken out.
 */
export function replacedBy(s: BootstrapState, next: (string | undefined)[]): string[] | undefined {
  const old = [...(s.replaces ?? []), s.nix, s.cacert].filter((p): p is string => p !== undefined && !next.includes(p));
  return old.length ? [...new Set(old)] : undefined;
}

export interface StageResult {
  summary: string;
  /** kept in the stage's record, for later stages and for relonix status */
  detail?: unknown;
  patch?: StatePatch;
}

export interface Stage {
  name: StageName;
  title: string;
  /** the stage's own inputs; its key chains them to the previous stage's key */
  inputs(ctx: BootstrapContext, s: BootstrapState): unknown;
  run(ctx: BootstrapContext, s: BootstrapState, progress: (text: string) => void): Promise<StageResult>;
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

/** The record of an earlier stage that this one reads, or an error saying how to recover. */
export function detailOf<T>(s: BootstrapState, stage: StageName): T {
  const d = s.stages[stage]?.detail as T | undefined;
  if (d === undefined) throw new Error(`stage ${stage} has no record in the state file; re-run relonix bootstrap`);
  return d;
}

// What one stage records for the next ones to read (detailOf).

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
