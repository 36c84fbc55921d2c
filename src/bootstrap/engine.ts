// The bootstrap: stages run in order, each recorded in the prefix's state with a key of its inputs
// chained to the previous stage's, so a re-run continues at the first stage that is not done.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { parsePublicKey } from '../cache/keys.ts';
import { DEFAULT_MAX_DOWNLOAD, isLocalSource, localSourcePath } from '../net/local.ts';
import { saveNetrcCredentials } from '../net/netrc.ts';
import { sha256OfFile } from '../net/sha256.ts';
import { admitPrefix } from '../prefix/guard.ts';
import { layout as makeLayout } from '../prefix/layout.ts';
import { type BootstrapState, emptyState, isBootstrapped, readState, type StageName, writeState } from '../prefix/state.ts';
import { DEFAULT_UPSTREAMS, type UpstreamConfig } from '../translator/config.ts';
import { emit } from '../util/emit.ts';
import { errorMessage, fromSystemError, isKind, isNoSpace, noSpace, RelonixError } from '../util/errors.ts';
import { exists, freeSpace, removeTree } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { splitCredentials } from '../util/redact.ts';
import { keptSoFar } from '../util/signals.ts';
import { nixSystem } from '../util/system.ts';
import { pickMode, type UiMode } from '../util/ui-mode.ts';
import { type BootstrapContext, recorded, type Stage, type StageResult } from './stage.ts';
import { planStages, preloadTarballStages } from './stages/registry.ts';
import { runStages, type UiStage } from './ui.ts';

export interface BootstrapOptions {
  prefix?: string;
  /** the store dir, when not PREFIX/store (recorded in the state, so every later command finds it) */
  storeDir?: string;
  url?: string;
  sha256?: string;
  caches?: string[];
  trustedKeys?: string[];
  /** the caches whose binaries are translated on demand (default cache.nixos.org; [] for none) */
  upstreams?: UpstreamConfig[];
  /** seconds to wait for another relonix holding the prefix */
  waitSeconds?: number;
  json?: boolean;
  /** keep the downloaded tarball after success (benchmarks and tests reuse it) */
  keepDownload?: boolean;
  /** where the progress display goes (default stdout; relonix build keeps its stdout for output paths) */
  progress?: NodeJS.WriteStream;
  /** the largest tarball a download takes when the server announces no size (default DEFAULT_MAX_DOWNLOAD) */
  maxDownloadBytes?: number;
  /**
   * relonix demo, in its own prefix ('own'), or in one the user named ('given'), which must be new
   * or one a demo made: never a prefix of the user's
   */
  demo?: 'own' | 'given';
}

export interface BootstrapResult {
  prefix: string;
  nix: string;
  cacert?: string;
  alreadyDone: boolean;
  ran: StageName[];
  ms: number;
  stageMs: Partial<Record<StageName, number>>;
}

/** A local tarball's sha256: a file replaced at the same path is another tarball. */
async function localContent(url: string): Promise<string | undefined> {
  if (!isLocalSource(url)) return undefined;
  const p = localSourcePath(url);
  // anything but a regular file is refused by the fetch stage, which says why
  const st = await fs.stat(p).catch(() => undefined);
  return st?.isFile() ? sha256OfFile(p) : undefined;
}

/**
 * How many stages stay done, up to the first whose work a later stage still needs and that is gone:
 * the stage a run would start at names what it finds missing, and the run starts there instead,
 * until nothing it needs is missing.
 */
async function withoutLost(ctx: BootstrapContext, stages: Stage[], s: BootstrapState, done: number): Promise<number> {
  while (done < stages.length) {
    const from = await stages[done]!.lost?.(ctx, s);
    const i = from === undefined ? -1 : stages.findIndex((st) => st.name === from);
    if (i < 0 || i >= done) return done;
    done = i;
  }
  return done;
}

function chainKey(prev: string, inputs: unknown): string {
  return createHash('sha256')
    .update(prev)
    .update('\0')
    .update(JSON.stringify(inputs ?? null))
    .digest('hex')
    .slice(0, 32);
}

/**
 * Pure: every stage's key, chained from the first, decided before anything runs. A stage's inputs
 * are what the command line and the host give it; what earlier stages found (a download's hash, the
 * Nix a tarball holds) needs no place in a later key, because a stage that runs again runs every
 * stage after it too.
 */
export function planKeys(ctx: BootstrapContext, stages: Stage[]): string[] {
  let prev = '';
  return stages.map((st) => {
    prev = chainKey(prev, st.inputs(ctx));
    return prev;
  });
}

/** Pure: how many stages, from the first, the state records as done with these keys. */
export function doneCount(keys: string[], s: BootstrapState, stages: Stage[]): number {
  const i = stages.findIndex((st, n) => s.stages[st.name]?.key !== keys[n]);
  return i < 0 ? stages.length : i;
}

export async function runBootstrap(opts: BootstrapOptions): Promise<BootstrapResult> {
  const t0 = Date.now();
  const l = makeLayout(opts.prefix, opts.storeDir);
  // before anything is written: nix.conf and the state are readable by all, and a secret key
  // pasted as a trusted key must not land there
  for (const k of opts.trustedKeys ?? []) parsePublicKey(k);
  const caches = (opts.caches ?? []).map(splitCredentials);
  const ctx: BootstrapContext = {
    layout: l,
    host: nixSystem(),
    caches: caches.map((c) => c.url),
    credentials: caches.flatMap((c) => (c.credentials ? [c.credentials] : [])),
    trustedKeys: opts.trustedKeys ?? [],
    upstreams: opts.upstreams ?? DEFAULT_UPSTREAMS,
    maxDownloadBytes: opts.maxDownloadBytes ?? DEFAULT_MAX_DOWNLOAD,
  };
  const done = (s: BootstrapState): BootstrapResult => ({
    prefix: l.prefix,
    nix: s.nix!,
    cacert: s.cacert,
    alreadyDone: true,
    ran: [],
    ms: Date.now() - t0,
    stageMs: {},
  });

  // nothing is written anywhere a bootstrap may not write: the checks come first
  const quick = await admitPrefix(l, { demo: opts.demo === 'given' });
  // a finished prefix is answered without the lock: nothing will be written. With no source named
  // at all (no --url, --sha256 or --cache), whatever the prefix was bootstrapped from stands.
  const noSource = !opts.url && !opts.sha256 && ctx.caches.length === 0;
  if (quick && noSource && (await isBootstrapped(l, quick))) return done(quick);
  if (opts.url || ctx.caches.length === 0) {
    const url = opts.url ?? (await import('../net/download.ts')).defaultReleaseUrl(ctx.host);
    ctx.tarball = { url, sha256: opts.sha256, content: opts.sha256 ? undefined : await localContent(url) };
  }
  const stages = planStages(ctx);
  const keys = planKeys(ctx, stages);
  // new credentials for the same caches are written under the lock
  const nothingToWrite = ctx.credentials.length === 0;
  if (quick && nothingToWrite && (await isBootstrapped(l, quick)) && doneCount(keys, quick, stages) === stages.length) return done(quick);

  const mode = pickMode(!!opts.json);
  return withLock(
    l.lockFile,
    {
      what: `bootstrap of ${l.prefix}`,
      waitMs: (opts.waitSeconds ?? 0) * 1000,
      onWait: (owner) => say(mode, `relonix: waiting for pid ${owner.pid} (${owner.what}) to release ${l.prefix}`, opts.progress),
    },
    async () => {
      let state = await readState(l);
      // a store dir nothing was done in yet (admitPrefix refused any other change), or a wiped store
      // under an intact state file: start over, as the same prefix
      if (state.storeDir !== l.storeDir || (state.nix && !(await exists(state.nix)))) state = emptyState(l, state);
      const first = await withoutLost(ctx, stages, state, doneCount(keys, state, stages));
      if (first === stages.length) {
        await saveNetrcCredentials(l.netrcFile, ctx.credentials);
        return done(state);
      }
      // recorded for another host to be bootstrapped the same way: never with credentials
      const url = ctx.tarball && splitCredentials(ctx.tarball.url).url;
      state.source = { url, sha256: ctx.tarball?.sha256, caches: ctx.caches, trustedKeys: ctx.trustedKeys };
      // the demo's prefix stays the demo's until a bootstrap of the user's own makes it theirs
      if (opts.demo) state.madeBy = 'demo';
      else delete state.madeBy;
      if (ctx.tarball) preloadTarballStages();
      const r = await runFrom(ctx, stages, state, { keys, first }, mode, opts.progress);
      if (!opts.keepDownload) {
        await removeTree(l.stagingDir);
        await removeTree(l.downloadsDir);
      }
      return { prefix: l.prefix, nix: r.state.nix!, cacert: r.state.cacert, alreadyDone: false, ran: r.ran, ms: Date.now() - t0, stageMs: r.stageMs };
    },
  );
}

/** Runs every stage from `first` (the first not done), recording each, with its key, as it finishes. */
async function runFrom(
  ctx: BootstrapContext,
  stages: Stage[],
  state: BootstrapState,
  { keys, first }: { keys: string[]; first: number },
  mode: UiMode,
  out?: NodeJS.WriteStream,
) {
  const l = ctx.layout;
  // the stages from `first` on all run: what they recorded before no longer holds, and a run killed
  // half-way must not find a later stage's old record matching its key
  for (const st of stages.slice(first)) delete state.stages[st.name];
  await writeState(l, state);
  const ran: StageName[] = [];
  const stageMs: Partial<Record<StageName, number>> = {};
  const finished = stages.slice(0, first).map((st) => st.name);
  const ui: UiStage[] = stages.map((st, i) => ({
    name: st.name,
    title: st.title,
    exec: async (progress) => {
      if (i < first) return { skipped: true, summary: `done ${state.stages[st.name]!.doneAt}` };
      keptSoFar(keptText(finished, st.name));
      const t = Date.now();
      let r: StageResult;
      try {
        r = await st.run(ctx, state, progress);
      } catch (e) {
        throw stageFailed(st, await asNoSpace(ctx, state, e));
      }
      stageMs[st.name] = Date.now() - t;
      Object.assign(state, r.patch);
      state.stages[st.name] = { doneAt: new Date().toISOString(), key: keys[i]!, detail: r.detail };
      await writeState(l, state);
      ran.push(st.name);
      finished.push(st.name);
      return { skipped: false, summary: r.summary };
    },
  }));
  await runStages(ui, mode, out);
  return { state, ran, stageMs };
}

/** What an interrupted bootstrap leaves: the stages done, and where the next run starts. */
function keptText(finished: StageName[], next: StageName): string {
  const part = next === 'fetch' ? ' (the partial download is kept and resumes)' : '';
  const done = finished.length ? `stages ${finished.join(', ')} are done and kept` : 'no stage was done yet';
  return `${done}; relonix bootstrap, run again, continues at stage ${next}${part}`;
}

function say(mode: UiMode, text: string, out: NodeJS.WriteStream = process.stdout): void {
  if (mode === 'json') emit({ event: 'info', text });
  else out.write(`${text}\n`);
}

/** A full disk in any stage is said as one, with what preflight reckoned the whole install needs. */
async function asNoSpace(ctx: BootstrapContext, s: BootstrapState, e: unknown): Promise<unknown> {
  if (!isNoSpace(e) || isKind(e, 'preflight')) return e;
  const need = recorded(s, 'preflight')?.needBytes;
  return noSpace(ctx.layout.prefix, await freeSpace(ctx.layout.prefix), need, e);
}

/**
 * A stage that failed, said with its name: with the kind and fix of the error it failed with when
 * a layer worded it (or the system's refusal in words), else as a failure to fix and re-run.
 */
export function stageFailed(st: Pick<Stage, 'name' | 'title'>, e: unknown): RelonixError {
  const worded = e instanceof RelonixError ? e : fromSystemError(e);
  return new RelonixError(`stage ${st.name} (${st.title.toLowerCase()}) failed: ${errorMessage(worded ?? e)}`, {
    kind: worded ? worded.kind : 'failure',
    hint: worded ? worded.hint : `fix the cause and re-run relonix bootstrap: it continues from stage ${st.name} (RELONIX_DEBUG=1 shows the cause chain)`,
    cause: e,
  });
}
