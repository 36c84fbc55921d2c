// relonix build: nix-build with every finished derivation pushed to the cache as it completes, so a
// restart loses only the builds that were running and the same command, run again, goes on from there.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readSecretKeyFile } from '../cache/key-files.ts';
import { parsePublicKey } from '../cache/keys.ts';
import { openTarget } from '../cache/targets.ts';
import { readCgroupLimits } from '../host/cgroup.ts';
import { planParallelism, userSettings } from '../host/parallelism.ts';
import { saveNetrcCredentials } from '../net/netrc.ts';
import { prefixEnvironment } from '../prefix/environment.ts';
import { admitPrefix } from '../prefix/guard.ts';
import { type Layout, layout } from '../prefix/layout.ts';
import { userConfLines } from '../prefix/nix-conf.ts';
import { resolveNixTool } from '../prefix/tools.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { splitCredentials } from '../util/redact.ts';
import { POLICY } from '../util/retry.ts';
import { holdSignals } from '../util/signals.ts';
import { nixSystem } from '../util/system.ts';
import { pickMode } from '../util/ui-mode.ts';
import { writeHook } from './hook.ts';
import { ensureNix, nixMissingFromCache } from './nix.ts';
import { type NixBuild, type NixLogEvent, NixLogReader, nixBuildArgs, startNixBuild } from './nix-build.ts';
import { BuildDisplay, type Counts } from './progress.ts';
import { compactQueue, type QueueFiles, queueFiles, readQueue } from './queue.ts';
import { translateFirst } from './translate-first.ts';
import { pushFailed, type UploadEvent, Uploader } from './uploader.ts';

export interface DurableBuildOptions {
  prefix?: string;
  cache: string;
  secretKey: string;
  trustedKeys: string[];
  /** seconds from SIGTERM or SIGINT to exit */
  grace: number;
  json: boolean;
  /** nix-build's arguments */
  args: string[];
  /** translate what this upstream cache built (for /nix/store) into --cache first */
  translateFrom?: { url: string; keys: string[] };
}

export interface DurableBuildResult {
  /** nix-build's exit status */
  code: number;
  /** what nix-build printed on stdout: the output paths */
  stdout: string;
  /** derivations built but not in the cache: they stay queued for the next run */
  pending: string[];
  pushError?: RelonixError;
  /** the grace period ran out before the pushes did */
  abandoned: boolean;
  signal?: NodeJS.Signals;
  display: BuildDisplay;
}

/** Time kept from the grace period for writing the output paths and exiting. */
const EXIT_MARGIN_MS = 700;

interface Run {
  l: Layout;
  o: DurableBuildOptions;
  files: QueueFiles;
  display: BuildDisplay;
  uploader: Uploader;
  counts: Counts;
}

export async function runDurableBuild(o: DurableBuildOptions): Promise<DurableBuildResult> {
  const l = layout(o.prefix);
  const key = await readSecretKeyFile(o.secretKey);
  const target = openTarget(o.cache, { netrc: l.netrcFile });
  // one's own cache needs no --trusted-key: its key is derived from the secret
  const trustedKeys = [key.publicKey, ...o.trustedKeys.map((k) => k.trim()).filter((k) => k !== key.publicKey)];
  // a malformed key is refused here, not by nix-build half-way
  for (const k of trustedKeys) parsePublicKey(k);
  const files = queueFiles(l);
  const display = new BuildDisplay(pickMode(o.json));
  // the build's lock goes into the prefix: only into one a bootstrap may use
  await admitPrefix(l);
  const busyHint = 'one relonix build at a time per prefix: wait for it to finish, or build in another prefix (--prefix DIR)';
  return withLock(files.lock, { what: `relonix build in ${l.prefix}`, busyHint }, async () => {
    const system = nixSystem();
    const n = await ensureNix(l, { cache: o.cache, target, trustedKeys, system, json: o.json });
    // nix-build is given the cache without credentials: they go to the prefix's netrc, which it reads
    const cache = splitCredentials(o.cache);
    if (cache.credentials) await saveNetrcCredentials(l.netrcFile, [cache.credentials]);
    if (n.restored) display.say(`restored ${path.basename(n.nix)} from ${target.url}`, { event: 'nix', status: 'restored', nix: n.nix });
    if (o.translateFrom) {
      const t = await translateFirst({
        layout: l,
        from: o.translateFrom.url,
        fromKeys: o.translateFrom.keys,
        to: o.cache,
        key,
        args: o.args,
        log: (m) => display.say(m),
      });
      display.say(`translated from ${o.translateFrom.url}: ${t.published} paths published, ${t.present} already in ${target.url}, ${t.missing} to build`, {
        event: 'translated',
        ...t,
      });
    }
    const env = await prefixEnvironment(l);
    const releaseTranslator = await startTranslator(l, display);
    const counts: Counts = { built: 0, running: 0, failed: 0, pushed: 0, unpushed: 0 };
    // events only come once the uploader has started, after `run` exists
    const uploader: Uploader = new Uploader({
      layout: l,
      nix: n.nix,
      env,
      target,
      key,
      files,
      ...POLICY.buildPush,
      onEvent: (e) => onUpload(run, e),
    });
    const run: Run = { l, o, files, display, counts, uploader };
    const oldPlan = await readPlan(files);
    if (oldPlan.length === 0) await compactQueue(files);
    const q = await readQueue(files);
    counts.unpushed = q.pending.length;
    if (q.pending.length) display.say(`${q.pending.length} derivations an earlier run built are not in the cache yet: pushing them first`);
    await run.uploader.start(q, await nixMissingFromCache(target, n, system));
    if (oldPlan.length) await run.uploader.sweep(oldPlan);
    const b = await build(run, n.nix, env, trustedKeys, cache.url).finally(releaseTranslator);
    return { ...b, display };
  });
}

async function readPlan(files: QueueFiles): Promise<string[]> {
  return (await fs.readFile(files.plan, 'utf8').catch(() => '')).split('\n').filter(Boolean);
}

/** Runs nix-build to its end (or a stop signal's), then pushes what is left within the deadline. */
async function build(run: Run, nix: string, env: NodeJS.ProcessEnv, trustedKeys: string[], cache: string) {
  const { l, o, files, display } = run;
  const conf = await fs.readFile(l.confFile, 'utf8').catch(() => '');
  const user = userSettings(o.args, userConfLines(conf), env.NIX_CONFIG);
  const parallelism = planParallelism(await readCgroupLimits(), os.availableParallelism());
  const hook = await writeHook(files, user.postBuildHook);
  const args = nixBuildArgs({ hook, cache, publicKeys: trustedKeys, parallelism, user });
  const reader = new NixLogReader();
  let plan: string[] = [];
  let planWritten: Promise<void> = Promise.resolve();
  const onNix = (ev: NixLogEvent) => {
    if (ev.kind === 'plan') {
      plan = ev.drvs;
      planWritten = writeFileAtomic(files.plan, plan.map((d) => `${d}\n`).join(''));
    }
    onNixEvent(run, ev);
  };
  const bin = await resolveNixTool({ layout: l, nix }, 'nix-build');
  // the handlers come first: a signal while nix-build starts stops it as soon as it exists
  let nb: NixBuild | undefined;
  const stop = stopOnSignals(o.grace, (sig) => {
    display.say(`${sig}: stopping nix-build, pushing what has finished (${o.grace} s at most)`, { event: 'stopping', signal: sig, graceSeconds: o.grace });
    nb?.stop();
  });
  try {
    nb = startNixBuild(bin, args, env, (line) => {
      display.nixLine(line);
      for (const ev of reader.line(line)) onNix(ev);
    });
    if (stop.signal) nb.stop();
    const code = await nb.done;
    for (const ev of reader.end()) onNix(ev);
    await planWritten;
    // outputs whose hook never wrote its line (killed between Nix registering them and the write)
    if (Date.now() < stop.deadline) await run.uploader.sweep(plan).catch(() => undefined);
    const closureError = code === 0 && !stop.signal ? await pushOutputClosures(run, nb.stdout()) : undefined;
    const u = await run.uploader.finish(() => stop.deadline);
    if (!u.abandoned) await fs.rm(files.plan, { force: true });
    run.counts.unpushed = u.pending.length;
    display.update(run.counts, true);
    display.close();
    return { code, stdout: nb.stdout(), pending: u.pending, pushError: u.error ?? closureError, abandoned: u.abandoned, signal: stop.signal };
  } finally {
    stop.dispose();
  }
}

/**
 * The prefix's translator, running while this build does (the build runs nix-build itself, not
 * through the bin/ wrappers); one that cannot start is said, and the build goes on.
 */
async function startTranslator(l: Layout, display: BuildDisplay): Promise<() => Promise<void>> {
  const { ensureTranslator, holdLease } = await import('../translator/client.ts');
  const { readTranslatorConfig, translatorFiles } = await import('../translator/config.ts');
  if (!(await readTranslatorConfig(l).catch(() => undefined))) return async () => undefined;
  const release = await holdLease(translatorFiles(l), (text) => {
    for (const line of text.trimEnd().split('\n')) display.say(line.replace(/^relonix: /, ''), { event: 'translator', text: line });
  });
  try {
    await ensureTranslator(l);
  } catch (e) {
    display.say(`warning: ${errorMessage(e)}`, { event: 'translator', status: 'unavailable', message: errorMessage(e) });
  }
  return release;
}

/** What nix-build substituted (translated paths too) goes up with the outputs' closures; an error is a push error. */
async function pushOutputClosures(run: Run, stdout: string): Promise<RelonixError | undefined> {
  const outputs = stdout.split('\n').filter((p) => p.startsWith(`${run.l.storeDir}/`));
  if (!outputs.length) return undefined;
  try {
    const n = await run.uploader.pushClosure(outputs);
    if (n)
      run.display.say(`pushed ${n} paths of the outputs' closures that were not built here (substituted or translated)`, { event: 'pushed-closure', paths: n });
    return undefined;
  } catch (e) {
    return e instanceof RelonixError ? e : pushFailed(e);
  }
}

/**
 * SIGTERM, SIGINT and SIGHUP while relonix build runs: the first calls `onFirst` and leaves the
 * grace period (less the time to write the output paths and exit) to push what has finished; a
 * second ends the waiting for pushes at once.
 */
function stopOnSignals(grace: number, onFirst: (sig: NodeJS.Signals) => void) {
  const state = { deadline: Infinity, signal: undefined as NodeJS.Signals | undefined, dispose: (): void => undefined };
  const on = (sig: NodeJS.Signals) => {
    state.deadline = state.signal ? Date.now() : Date.now() + grace * 1000 - EXIT_MARGIN_MS;
    if (state.signal) return;
    state.signal = sig;
    onFirst(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  // relonix build stops on its own terms: held from the CLI's exit on signals until it is done
  const release = holdSignals();
  for (const s of signals) process.on(s, on);
  state.dispose = () => {
    for (const s of signals) process.off(s, on);
    release();
  };
  return state;
}

function onNixEvent(run: Run, ev: NixLogEvent): void {
  const c = run.counts;
  if (ev.kind === 'plan') {
    c.total = ev.drvs.length;
    run.display.count(c, { event: 'plan', derivations: ev.drvs.length, drvs: ev.drvs, fetch: ev.fetch });
    return;
  }
  if (ev.kind === 'start') c.running++;
  else c.running = Math.max(0, c.running - 1);
  if (ev.kind === 'finish') {
    run.display.update(c);
    return;
  }
  if (ev.kind === 'fail') c.failed++;
  run.display.count(c, { event: ev.kind === 'start' ? 'building' : 'failed', drv: ev.drv });
}

function onUpload(run: Run, e: UploadEvent): void {
  const c = run.counts;
  c.unpushed = run.uploader.pending.size;
  c.pushed = run.uploader.pushed;
  const d = run.display;
  switch (e.kind) {
    case 'queued':
      c.built++;
      d.step(`built ${path.basename(e.drv)}`, c, { event: 'built', drv: e.drv });
      break;
    case 'pushed':
      d.step(`pushed ${e.drvs.map((x) => path.basename(x)).join(', ')} (${e.paths} paths, ${e.ms} ms)`, c, {
        event: 'pushed',
        drvs: e.drvs,
        paths: e.paths,
        ms: e.ms,
      });
      break;
    case 'nix-published':
      d.step(`published ${path.basename(e.nix)} (${e.paths} paths) and named it in the manifest, so a restart can restore it`, c, {
        event: 'nix',
        status: 'published',
        nix: e.nix,
        paths: e.paths,
      });
      break;
    case 'dropped':
      d.step(`not pushing ${path.basename(e.drv)}: ${e.why}`, c, { event: 'dropped', drv: e.drv, why: e.why });
      break;
    case 'error':
      d.step(`pushing failed, trying again later: ${e.error.message}`, c, {
        event: 'push-error',
        message: e.error.message,
        hint: e.error.hint,
        kind: e.error.kind,
      });
      break;
  }
}
