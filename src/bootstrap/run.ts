import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { layout as makeLayout, type Layout } from '../store/layout.ts';
import { readState, writeState, type BootstrapState } from './state.ts';
import { withLock } from '../util/lock.ts';
import { RelonixError, errorMessage } from '../util/errors.ts';
import { exists, removeTree } from '../util/fs.ts';
import { nixSystem } from '../util/system.ts';
import { parseRegInfo } from '../store/reginfo.ts';
import { relocateTree, writeReport, type PathResult } from '../store/relocate.ts';
import { rewriteLinkTarget } from '../store/relocate-text.ts';
import { gatherFacts, planPreflight, preflightError, probeTarballSize, UNPACK_FACTOR, MARGIN, mib } from './preflight.ts';
import { applyConfigure } from './configure.ts';
import { applyRegister, installProfile, relocateRecords } from './register.ts';
import { applyVerify } from './verify.ts';
import { nixEnvironment } from './nixenv.ts';
import { runStages, pickMode, emit, type UiStage } from './ui.ts';

export const OLD_STORE = '/nix/store';

// The download, unpack and ELF modules load when their stage runs: a finished prefix answers its
// no-op re-run without paying for got, tar and the ELF engine.

export interface BootstrapOptions {
  prefix?: string;
  url?: string;
  sha256?: string;
  caches?: string[];
  trustedKeys?: string[];
  /** seconds to wait for another relonix holding the prefix */
  waitSeconds?: number;
  json?: boolean;
  /** keep the downloaded tarball after success (benchmarks and tests reuse it) */
  keepDownload?: boolean;
}

export interface BootstrapResult {
  prefix: string;
  nix: string;
  cacert?: string;
  alreadyDone: boolean;
  ran: string[];
  ms: number;
  stageMs: Record<string, number>;
}

interface StageDef {
  name: string;
  title: string;
  /** the stage's own inputs; chained with the previous stage's key */
  inputs(s: BootstrapState): unknown;
  run(s: BootstrapState, progress: (t: string) => void): Promise<{ detail?: unknown; summary: string }>;
}

function chainKey(prev: string, inputs: unknown): string {
  return createHash('sha256').update(prev).update('\0').update(JSON.stringify(inputs ?? null)).digest('hex').slice(0, 32);
}

interface UnpackDetail {
  root: string;
  version: string;
  system: string;
  nixPath: string;
  cacertPath?: string;
}

function detail<T>(s: BootstrapState, stage: string): T {
  const d = s.stages[stage]?.detail as T | undefined;
  if (d === undefined) throw new Error(`stage ${stage} has no record in the state file; re-run relonix bootstrap`);
  return d;
}

/**
 * What the tarball is: its sha256 when given (the same bytes from another mirror change nothing),
 * else its URL (whose .sha256 is read at fetch time).
 */
function source(o: BootstrapOptions, url: string): string {
  return o.sha256 ? `sha256:${o.sha256}` : `url:${url}`;
}

const moved = (p: string, to: string) => rewriteLinkTarget(p, OLD_STORE, to) ?? p;

function tarballStages(l: Layout, o: Required<Pick<BootstrapOptions, 'caches' | 'trustedKeys'>> & BootstrapOptions, url: string, host: string): StageDef[] {
  const relocateWork = path.join(l.relonixDir, 'relocate');
  const regCopy = path.join(l.relonixDir, 'tarball.reginfo');
  return [
    {
      name: 'preflight',
      title: 'Check the prefix and the machine',
      inputs: () => ({ prefix: l.prefix, source: source(o, url) }),
      run: async (_s, progress) => {
        progress('probing the tarball size');
        const size = await probeTarballSize(url);
        const facts = await gatherFacts(l, host, url, size);
        const plan = planPreflight(facts);
        if (!plan.ok) throw preflightError(plan);
        return { detail: { freeBytes: facts.freeBytes, needBytes: plan.needBytes, fsType: facts.fsType }, summary: `${mib(facts.freeBytes)} free on ${facts.fsType}, ${host}` };
      },
    },
    {
      name: 'fetch',
      title: 'Download the Nix tarball',
      inputs: () => ({ source: source(o, url) }),
      run: async (_s, progress) => {
        const { fetchTarball } = await import('./fetch.ts');
        const r = await fetchTarball({
          layout: l,
          url,
          sha256: o.sha256,
          onProgress: (p: unknown) => progress(progressText(p)),
        });
        const st = await fs.stat(r.tarball);
        return { detail: { tarball: r.tarball, sha256: r.sha256, bytes: st.size }, summary: `${path.basename(r.tarball)} (${mib(st.size)}, sha256 ${r.sha256.slice(0, 12)}…)` };
      },
    },
    {
      name: 'unpack',
      title: 'Unpack it',
      inputs: (s) => ({ sha256: detail<{ sha256: string }>(s, 'fetch').sha256 }),
      run: async (s, progress) => {
        const f = detail<{ tarball: string; bytes: number }>(s, 'fetch');
        // the real size is known now: check again before writing the closure
        const st = await fs.statfs(l.prefix);
        const free = Number(st.bavail) * Number(st.bsize);
        const need = f.bytes * UNPACK_FACTOR + MARGIN;
        if (free < need) {
          throw new RelonixError(`${l.prefix} has ${mib(free)} free; the unpacked closure needs about ${mib(need)}`, {
            kind: 'preflight',
            hint: 'free some space or choose a prefix on a bigger filesystem (--prefix DIR)',
          });
        }
        // a different tarball: nothing of an earlier unpack or relocation applies
        await removeTree(l.stagingDir);
        await removeTree(relocateWork);
        const { unpackTarball } = await import('./unpack.ts');
        const { readTarballInfo } = await import('./tarball.ts');
        const { root } = await unpackTarball({ tarball: f.tarball, dest: l.stagingDir, onProgress: (p: unknown) => progress(progressText(p)) });
        const info = await readTarballInfo(root);
        if (info.system !== host) {
          throw new RelonixError(`the tarball is built for ${info.system} but this machine is ${host}`, {
            kind: 'preflight',
            hint: `use the ${host} tarball (nix-<version>-${host}.tar.xz)`,
          });
        }
        await fs.copyFile(path.join(root, '.reginfo'), regCopy);
        const d: UnpackDetail = { root, version: info.version, system: info.system, nixPath: info.nixPath, cacertPath: info.cacertPath };
        return { detail: d, summary: `Nix ${info.version} for ${info.system}` };
      },
    },
    {
      name: 'relocate',
      title: `Relocate the closure to ${l.storeDir}`,
      inputs: () => ({ from: OLD_STORE, to: l.storeDir }),
      run: async (s, progress) => {
        const u = detail<UnpackDetail>(s, 'unpack');
        const { storeRelocator } = await import('../elf/index.ts');
        const r = await relocateTree({
          sourceDir: path.join(u.root, 'store'),
          from: OLD_STORE,
          to: l.storeDir,
          workDir: relocateWork,
          relocateElf: storeRelocator,
          onPath: (p, i, n) => progress(`${i}/${n} ${p.basename}`),
        });
        await writeReport(l.reportFile, { from: OLD_STORE, to: l.storeDir, counts: r.counts, hits: r.paths.flatMap((p) => p.hits) });
        const c = r.counts;
        return {
          detail: { paths: r.paths.length, ...c },
          summary: `${r.paths.length} paths: ${c.elfPatched} ELF patched, ${c.symlinks} symlinks, ${c.textFiles} text files, ${c.unrewritable} references left in binary data`,
        };
      },
    },
    {
      name: 'configure',
      title: 'Write nix.conf and the environment',
      inputs: (s) => ({ caches: o.caches, keys: o.trustedKeys, nix: detail<UnpackDetail>(s, 'unpack').nixPath }),
      run: async (s) => {
        const u = detail<UnpackDetail>(s, 'unpack');
        await applyConfigure(l, { caches: o.caches, trustedKeys: o.trustedKeys }, moved(u.nixPath, l.storeDir), u.cacertPath && moved(u.cacertPath, l.storeDir));
        return { summary: path.relative(l.prefix, l.confFile) };
      },
    },
    {
      name: 'register',
      title: 'Register the closure and install the profile',
      inputs: () => null,
      run: async (s, progress) => {
        const u = detail<UnpackDetail>(s, 'unpack');
        const records = relocateRecords(parseRegInfo(await fs.readFile(regCopy, 'utf8'), regCopy), OLD_STORE, l.storeDir);
        const { unchanged, known } = await relocationResults(relocateWork, l.storeDir);
        const changed = new Set(records.map((r) => r.path).filter((p) => !unchanged.has(p)));
        const nix = moved(u.nixPath, l.storeDir);
        const cacert = u.cacertPath ? moved(u.cacertPath, l.storeDir) : undefined;
        const r = await applyRegister(l, { records, changed, known, nix, cacert }, progress);
        const st = await readState(l);
        Object.assign(s, { nix, cacert, nixSource: 'tarball' });
        await writeState(l, { ...st, nix, cacert, nixSource: 'tarball' });
        return { summary: `${r.paths} paths (${r.rehashed} with new NAR hashes), profile ${path.relative(l.prefix, l.profile)}` };
      },
    },
    verifyStage(l),
  ];
}

function verifyStage(l: Layout): StageDef {
  return {
    name: 'verify',
    title: 'Prove the new Nix works',
    // nothing of its own: the chain of earlier keys already says what is being verified, and stage 2
    // changes state.nix afterwards
    inputs: () => null,
    run: async (s, progress) => {
      if (!s.nix) throw new Error('no Nix is registered yet');
      const v = await applyVerify(l, s.nix, s.cacert, progress);
      return { detail: v, summary: `${v.version}; store verified, check build ok, ${v.libraries} libraries all from the store` };
    },
  };
}

/**
 * From relocation's per-path markers: the paths it left byte-for-byte as the tarball had them (their
 * NAR hash still holds) and the NAR hashes it computed while writing the others.
 */
async function relocationResults(
  workDir: string,
  storeDir: string,
): Promise<{ unchanged: Set<string>; known: Map<string, { narHash: string; narSize: number }> }> {
  const out = new Set<string>();
  const known = new Map<string, { narHash: string; narSize: number }>();
  const dir = path.join(workDir, 'paths');
  let names: string[] = [];
  try {
    names = await fs.readdir(dir);
  } catch {
    return { unchanged: out, known };
  }
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      const r = JSON.parse(await fs.readFile(path.join(dir, n), 'utf8')) as PathResult;
      if (!r.changed) out.add(path.join(storeDir, r.basename));
      else if (r.narHash && r.narSize !== undefined) known.set(path.join(storeDir, r.basename), { narHash: r.narHash, narSize: r.narSize });
    } catch {
      // unreadable marker: re-hash that path
    }
  }
  return { unchanged: out, known };
}

function progressText(p: unknown): string {
  if (typeof p === 'string') return p;
  if (p && typeof p === 'object') {
    const o = p as Record<string, unknown>;
    // the cache restore reports steps with a message and counts of paths
    if (typeof o.message === 'string') return o.total ? `${o.message} (${Number(o.done ?? 0)}/${Number(o.total)})` : o.message;
    const done = Number(o.transferred ?? o.received ?? o.bytes ?? o.done ?? 0);
    const total = Number(o.total ?? o.size ?? 0);
    if (total > 0) {
      const frac = Math.min(1, done / total);
      const width = 24;
      const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
      return `${bar} ${(frac * 100).toFixed(0)}% ${mib(done)} / ${mib(total)}`;
    }
    if (done > 0) return mib(done);
  }
  return '';
}

/** Stage 2 and cache-only restores. */
async function cacheStages(l: Layout, o: BootstrapOptions & { caches: string[]; trustedKeys: string[] }, host: string, withTarball: boolean): Promise<StageDef[]> {
  // loaded only when a cache is given: tarball bootstraps never pay for it
  const cache = await import('../cache/restore.ts');
  if (withTarball) {
    return [
      {
        name: 'cache-nix',
        title: 'Install the Nix built for this prefix from the cache',
        inputs: () => ({ caches: o.caches, keys: o.trustedKeys }),
        run: async (s, progress) => {
          progress('substituting from the cache');
          const env = nixEnvironment(l, { nix: s.nix, cacert: s.cacert });
          const r = await cache.realiseNixFromCache({ layout: l, caches: o.caches, trustedKeys: o.trustedKeys, system: host, env });
          if (!r) return { summary: 'the cache names no Nix for this system and store dir; keeping the relocated one' };
          await installProfile(l, s.nix!, [r.nix, ...(s.cacert ? [s.cacert] : [])], env);
          const v = await applyVerify(l, r.nix, s.cacert, progress);
          const st = await readState(l);
          Object.assign(s, { nix: r.nix, nixSource: 'cache' });
          await writeState(l, { ...st, nix: r.nix, nixSource: 'cache' });
          return { detail: { nix: r.nix }, summary: `${path.basename(r.nix)} active (${v.version})` };
        },
      },
    ];
  }
  return [
    {
      name: 'preflight',
      title: 'Check the prefix and the machine',
      inputs: () => ({ prefix: l.prefix }),
      run: async () => {
        const facts = await gatherFacts(l, host, '', 16 * 1024 * 1024);
        const plan = planPreflight(facts);
        if (!plan.ok) throw preflightError(plan);
        return { summary: `${mib(facts.freeBytes)} free on ${facts.fsType}, ${host}` };
      },
    },
    {
      // before the restore: the first Nix to open the new database must already read
      // use-sqlite-wal = false, or the database is made in WAL mode and cannot be opened without it
      name: 'configure',
      title: 'Write nix.conf and the environment',
      inputs: () => ({ caches: o.caches, keys: o.trustedKeys }),
      run: async () => {
        await applyConfigure(l, { caches: o.caches, trustedKeys: o.trustedKeys });
        return { summary: path.relative(l.prefix, l.confFile) };
      },
    },
    {
      name: 'restore',
      title: 'Restore Nix from the binary cache',
      inputs: () => ({ store: l.storeDir }),
      run: async (s, progress) => {
        const r = await cache.restoreFromCache({ layout: l, caches: o.caches, trustedKeys: o.trustedKeys, system: host, onProgress: (p: unknown) => progress(progressText(p)) });
        progress('installing Nix into the default profile');
        const env = nixEnvironment(l, { nix: r.nix, cacert: r.cacert });
        await installProfile(l, r.nix, [r.nix, ...(r.cacert ? [r.cacert] : [])], env);
        // the profile scripts name the restored Nix too (its bin/ after the profile's)
        await applyConfigure(l, { caches: o.caches, trustedKeys: o.trustedKeys }, r.nix, r.cacert);
        const st = await readState(l);
        Object.assign(s, { nix: r.nix, cacert: r.cacert, nixSource: 'cache' });
        await writeState(l, { ...st, nix: r.nix, cacert: r.cacert, nixSource: 'cache' });
        return { detail: { nix: r.nix, cacert: r.cacert, paths: r.paths.length }, summary: `${path.basename(r.nix)} and ${r.paths.length} paths, profile ${path.relative(l.prefix, l.profile)}` };
      },
    },
    verifyStage(l),
  ];
}

async function planStages(l: Layout, o: BootstrapOptions & { caches: string[]; trustedKeys: string[] }, host: string): Promise<StageDef[]> {
  if (o.caches.length > 0 && !o.url) return cacheStages(l, o, host, false);
  const url = o.url ?? (await import('../net/download.ts')).defaultReleaseUrl(host);
  const stages = tarballStages(l, o, url, host);
  if (o.caches.length > 0) stages.push(...(await cacheStages(l, o, host, true)));
  return stages;
}

/** Which stages are done with the current inputs; the first one that is not, and everything after it, runs. */
function pendingFrom(stages: StageDef[], s: BootstrapState): { keys: string[]; firstPending: number } {
  const keys: string[] = [];
  let prev = '';
  let firstPending = -1;
  for (let i = 0; i < stages.length; i++) {
    let inputs: unknown;
    try {
      inputs = firstPending === -1 ? stages[i]!.inputs(s) : null;
    } catch {
      inputs = null;
    }
    prev = chainKey(prev, inputs);
    keys.push(prev);
    if (firstPending === -1 && s.stages[stages[i]!.name]?.key !== prev) firstPending = i;
  }
  return { keys, firstPending: firstPending === -1 ? stages.length : firstPending };
}

export async function runBootstrap(opts: BootstrapOptions): Promise<BootstrapResult> {
  const t0 = Date.now();
  const l = makeLayout(opts.prefix);
  const o = { ...opts, caches: opts.caches ?? [], trustedKeys: opts.trustedKeys ?? [] };
  const host = nixSystem();
  const mode = pickMode(!!opts.json);
  const say = (text: string) => (mode === 'json' ? emit({ event: 'info', text }) : process.stdout.write(`${text}\n`));

  // a finished prefix is answered without the lock: nothing will be written. With no source named
  // at all (no --url, --sha256 or --cache), whatever the prefix was bootstrapped from stands.
  const quick = await readState(l).catch(() => undefined);
  const noSource = !opts.url && !opts.sha256 && o.caches.length === 0;
  const finished = async (q: BootstrapState) =>
    q.storeDir === l.storeDir && !!q.nix && !!q.stages.verify && (await exists(path.join(q.nix, 'bin', 'nix')));
  const stages = quick && noSource && (await finished(quick)) ? [] : await planStages(l, o, host);
  if (quick && (stages.length === 0 || (await isComplete(l, stages, quick)))) {
    const ms = Date.now() - t0;
    if (mode === 'json') emit({ event: 'done', alreadyDone: true, prefix: l.prefix, nix: quick.nix, ms });
    else say(`relonix: ${l.prefix} is already bootstrapped (Nix ${quick.nix}); nothing to do. Use it: eval "$(relonix env${opts.prefix ? ` --prefix ${l.prefix}` : ''})"`);
    return { prefix: l.prefix, nix: quick.nix!, cacert: quick.cacert, alreadyDone: true, ran: [], ms, stageMs: {} };
  }

  return withLock(
    l.lockFile,
    {
      what: `bootstrap of ${l.prefix}`,
      waitMs: (opts.waitSeconds ?? 0) * 1000,
      onWait: (owner) => say(`relonix: waiting for pid ${owner.pid} (${owner.what}) to release ${l.prefix}`),
    },
    async () => {
      let state = await readState(l);
      if (state.storeDir !== l.storeDir) state = { version: 1, storeDir: l.storeDir, stages: {} };
      // a wiped store under an intact state file (or the reverse) starts over
      if (state.nix && !(await exists(state.nix))) state = { version: 1, storeDir: l.storeDir, stages: {} };
      const { firstPending } = pendingFrom(stages, state);
      if (firstPending === stages.length) {
        say(`relonix: ${l.prefix} is already bootstrapped (Nix ${state.nix}); nothing to do`);
        return { prefix: l.prefix, nix: state.nix!, cacert: state.cacert, alreadyDone: true, ran: [], ms: Date.now() - t0, stageMs: {} };
      }
      // start loading the later stages' modules now; preflight mostly waits on a probe process and a HEAD
      void Promise.all([import('./fetch.ts'), import('./unpack.ts'), import('./tarball.ts'), import('../elf/index.ts')]).catch(() => {});
      const ran: string[] = [];
      const stageMs: Record<string, number> = {};
      let prevKey = '';
      const ui: UiStage[] = stages.map((st, i) => ({
        name: st.name,
        title: st.title,
        exec: async (progress) => {
          const key = chainKey(prevKey, st.inputs(state));
          prevKey = key;
          const rec = state.stages[st.name];
          if (i < firstPending && rec?.key === key) return { skipped: true, summary: `done ${rec.doneAt}` };
          // this stage runs again: whatever later stages recorded no longer holds
          for (const later of stages.slice(i)) delete state.stages[later.name];
          await writeState(l, state);
          const t = Date.now();
          let r: { detail?: unknown; summary: string };
          try {
            r = await st.run(state, progress);
          } catch (e) {
            throw stageError(st, e);
          }
          stageMs[st.name] = Date.now() - t;
          state = await readState(l);
          state.stages[st.name] = { doneAt: new Date().toISOString(), key, detail: r.detail };
          await writeState(l, state);
          ran.push(st.name);
          return { skipped: false, summary: r.summary };
        },
      }));
      // an error is reported once, by the CLI (as a JSON event too, with --json)
      await runStages(ui, mode);
      if (!opts.keepDownload) {
        await removeTree(l.stagingDir);
        await removeTree(l.downloadsDir);
      }
      const ms = Date.now() - t0;
      if (mode === 'json') emit({ event: 'done', alreadyDone: false, prefix: l.prefix, nix: state.nix, ms, stageMs });
      else {
        const envFlag = opts.prefix ? ` --prefix ${l.prefix}` : '';
        say(`relonix: Nix is ready in ${l.prefix} (${(ms / 1000).toFixed(1)}s).`);
        say(`  use it in this shell:   eval "$(relonix env${envFlag})"`);
        say(`  or run one command:     relonix run${envFlag} -- nix-build '<your.nix>'`);
        say(`  every login:            . ${l.envScript}`);
      }
      return { prefix: l.prefix, nix: state.nix!, cacert: state.cacert, alreadyDone: false, ran, ms, stageMs };
    },
  );
}

async function isComplete(l: Layout, stages: StageDef[], s: BootstrapState): Promise<boolean> {
  if (s.storeDir !== l.storeDir || !s.nix) return false;
  if (pendingFrom(stages, s).firstPending !== stages.length) return false;
  return exists(path.join(s.nix, 'bin', 'nix'));
}

function stageError(st: StageDef, e: unknown): RelonixError {
  const msg = `stage ${st.name} (${st.title.toLowerCase()}) failed: ${errorMessage(e)}`;
  if (e instanceof RelonixError) return new RelonixError(msg, { kind: e.kind, hint: e.hint, cause: e });
  return new RelonixError(msg, {
    kind: 'failure',
    hint: `fix the cause and re-run relonix bootstrap: it continues from stage ${st.name} (RELONIX_DEBUG=1 shows a stack trace)`,
    cause: e,
  });
}
