// The uploader: while nix-build runs, it follows the queue and pushes each finished derivation's
// outputs, with their closures, and its build log to the cache, then records it as done. Pushes go
// in batches, one after another (what finishes meanwhile makes the next batch), each through
// publishPaths: incremental, NAR before narinfo, retried, at most `jobs` paths at once. A batch that
// fails stays pending and is tried again later; the build never waits for it.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { SecretKey } from '../cache/keys.ts';
import { queryClosure } from '../cache/nixstore.ts';
import { publishPaths } from '../cache/publish.ts';
import type { CacheTarget } from '../cache/targets.ts';
import type { Layout } from '../prefix/layout.ts';
import { type NixToolOptions, runNixStore } from '../prefix/tools.ts';
import { parseDerivation } from '../store/aterm.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { pool } from '../util/pool.ts';
import { backoffMs, POLICY, retry, spent } from '../util/retry.ts';
import { appendLines, type QueueFiles, type QueueState, QueueTail } from './queue.ts';

/** How often the queue file is looked at: a fstat, so the wait from "built" to "pushing" stays small. */
const POLL_MS = 100;

export interface NixRecord {
  system: string;
  nix: string;
  cacert?: string;
}

export type UploadEvent =
  | { kind: 'queued'; drv: string }
  | { kind: 'pushed'; drvs: string[]; paths: number; ms: number }
  | { kind: 'nix-published'; nix: string; paths: number }
  | { kind: 'dropped'; drv: string; why: string }
  | { kind: 'error'; error: RelonixError; pending: number };

export interface UploaderOptions {
  layout: Layout;
  /** the active Nix, whose nix-store answers questions about the store */
  nix: string;
  env: NodeJS.ProcessEnv;
  target: CacheTarget;
  key: SecretKey;
  files: QueueFiles;
  jobs?: number;
  retries?: number;
  minRetryDelayMs?: number;
  onEvent?: (e: UploadEvent) => void;
}

export interface UploadOutcome {
  /** derivations still not in the cache; they stay in the queue for the next run */
  pending: string[];
  error?: RelonixError;
  /** the deadline came first: what was in flight is left to the next run */
  abandoned: boolean;
}

/** A push to the cache that failed for a reason no layer below worded (a worded one is passed on as it is). */
export function pushFailed(e: unknown): RelonixError {
  return new RelonixError(errorMessage(e), { hint: 'the queue is kept: the next relonix build pushes it first', cause: e });
}

const asRelonixError = (e: unknown): RelonixError => (e instanceof RelonixError ? e : pushFailed(e));

export class Uploader {
  /** derivations queued and not yet pushed, in queue order */
  readonly pending = new Set<string>();
  pushed = 0;
  lastError?: RelonixError;
  private readonly tail: QueueTail;
  private readonly known = new Set<string>();
  private readonly done = new Set<string>();
  private nixRecord?: NixRecord;
  private closing = false;
  private retryAt = 0;
  /** batches failed in a row: the next try waits by POLICY.buildBatch */
  private failures = 0;
  private wake?: () => void;
  private looping?: Promise<void>;

  constructor(private readonly o: UploaderOptions) {
    this.tail = new QueueTail(o.files.queue);
  }

  private get tools(): NixToolOptions {
    return { layout: this.o.layout, nix: this.o.nix, env: this.o.env };
  }

  /**
   * Starts with what the queue holds (an earlier run's pending entries go first) and the Nix, when
   * the cache still lacks it.
   */
  async start(q: QueueState, nixRecord?: NixRecord): Promise<void> {
    await this.tail.skipExisting();
    for (const d of q.pending) this.pending.add(d);
    for (const d of q.done) this.done.add(d);
    this.nixRecord = nixRecord;
    // what an earlier run left, and the Nix, go up before anything of this run: resolves after one try
    if (this.hasWork()) await this.attempt();
    this.looping = this.loop();
  }

  /**
   * Queues the derivations of a plan whose outputs are valid but which never reached the queue: a
   * hook killed between Nix registering the outputs and the line being written. Costs one Nix call.
   */
  async sweep(plan: string[]): Promise<void> {
    // whatever the hooks wrote is known first, so that no entry is queued twice
    await this.poll();
    const unseen = plan.filter((d) => !this.pending.has(d) && !this.done.has(d));
    const outputs = await Promise.all(unseen.map((d) => this.outputsOf(d)));
    const invalid = await this.invalid(outputs.flat());
    await appendLines(
      this.o.files.queue,
      unseen.filter((_, i) => outputs[i]!.length > 0 && outputs[i]!.every((p) => !invalid.has(p))),
    );
  }

  private async invalid(paths: string[]): Promise<Set<string>> {
    if (paths.length === 0) return new Set();
    return new Set((await runNixStore(this.tools, ['--check-validity', '--print-invalid', ...paths])).split('\n').filter(Boolean));
  }

  private async poll(): Promise<void> {
    for (const d of await this.tail.next()) {
      if (this.pending.has(d)) continue;
      this.pending.add(d);
      this.o.onEvent?.({ kind: 'queued', drv: d });
    }
  }

  private hasWork(): boolean {
    return this.pending.size > 0 || this.nixRecord !== undefined;
  }

  private async loop(): Promise<void> {
    while (!this.closing) {
      await this.poll().catch(() => undefined);
      if (this.hasWork() && Date.now() >= this.retryAt) await this.attempt();
      else
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, POLL_MS);
        });
    }
  }

  /** One try at everything pending; a failure is remembered and tried again after a pause. */
  private async attempt(): Promise<void> {
    try {
      if (this.nixRecord) await this.pushNix(this.nixRecord);
      const batch = [...this.pending];
      if (batch.length) await this.pushDrvs(batch);
      this.failures = 0;
      this.lastError = undefined;
    } catch (e) {
      this.lastError = asRelonixError(e);
      this.retryAt = Date.now() + backoffMs(this.failures++, POLICY.buildBatch);
      this.o.onEvent?.({ kind: 'error', error: this.lastError, pending: this.pending.size });
    }
  }

  private publish(paths: Parameters<typeof publishPaths>[0]['paths'], record?: NixRecord) {
    const o = this.o;
    return publishPaths({
      target: o.target,
      storeDir: o.layout.storeDir,
      paths,
      key: o.key,
      jobs: o.jobs,
      tmpDir: o.files.dir,
      retries: o.retries,
      minRetryDelayMs: o.minRetryDelayMs,
      record,
    });
  }

  private async pushNix(rec: NixRecord): Promise<void> {
    const records = await queryClosure(this.tools, [rec.nix, ...(rec.cacert ? [rec.cacert] : [])]);
    await this.publish(records, rec);
    for (const r of records) this.known.add(r.path);
    this.nixRecord = undefined;
    this.o.onEvent?.({ kind: 'nix-published', nix: rec.nix, paths: records.length });
  }

  /** The outputs of each derivation, their closures and the logs; then the derivations are done. */
  private async pushDrvs(drvs: string[]): Promise<void> {
    const t0 = Date.now();
    const outputs = new Map<string, string[]>();
    for (const d of drvs) outputs.set(d, await this.outputsOf(d));
    const invalid = await this.invalid([...new Set([...outputs.values()].flat())]);
    const ready = drvs.filter((d) => outputs.get(d)!.length > 0 && outputs.get(d)!.every((p) => !invalid.has(p)));
    const gone = drvs.filter((d) => !ready.includes(d));
    const records = await queryClosure(
      this.tools,
      ready.flatMap((d) => outputs.get(d)!),
    );
    const fresh = records.filter((r) => !this.known.has(r.path));
    if (fresh.length) await this.publish(fresh);
    for (const r of records) this.known.add(r.path);
    await this.pushLogs(ready);
    // what can no longer be pushed (collected as garbage since it was queued) must not stay pending
    await appendLines(this.o.files.done, [...ready, ...gone]);
    for (const d of gone) this.o.onEvent?.({ kind: 'dropped', drv: d, why: 'its outputs are no longer valid in the store' });
    for (const d of drvs) {
      this.pending.delete(d);
      this.done.add(d);
    }
    this.pushed += ready.length;
    if (ready.length) this.o.onEvent?.({ kind: 'pushed', drvs: ready, paths: records.length, ms: Date.now() - t0 });
  }

  /**
   * The closures of `paths` (the build's outputs), what is not up yet: what Nix substituted rather
   * than built, translated from upstream say, so that a restart restores it from the cache too.
   */
  async pushClosure(paths: string[]): Promise<number> {
    const records = await queryClosure(this.tools, paths);
    const fresh = records.filter((r) => !this.known.has(r.path));
    if (fresh.length) await this.publish(fresh);
    for (const r of records) this.known.add(r.path);
    return fresh.length;
  }

  /** From the .drv itself; a derivation whose outputs it does not name (content-addressed) asks Nix. */
  private async outputsOf(drv: string): Promise<string[]> {
    const bytes = await fs.readFile(drv).catch(() => undefined);
    if (!bytes) return [];
    const outs = parseDerivation(bytes).outputs.map((x) => x.path);
    if (outs.every(Boolean)) return outs;
    return (await runNixStore(this.tools, ['--query', '--outputs', drv])).split('\n').filter(Boolean);
  }

  /** Each build log as `log/<drv basename>`, plain text, where `nix log` looks for it. */
  private async pushLogs(drvs: string[]): Promise<void> {
    const o = this.o;
    await pool(drvs, o.jobs ?? 4, async (drv) => {
      const base = path.basename(drv);
      // a substituted derivation has no log here
      const text = await fs.readFile(path.join(o.layout.logDir, 'drvs', base.slice(0, 2), base.slice(2))).catch(() => undefined);
      if (!text) return;
      try {
        await retry(() => o.target.put(`log/${base}`, text, 'text/plain; charset=utf-8'), o);
      } catch (e) {
        throw spent(e, `uploading the build log of ${base} to ${o.target.url} failed`, 'the queue is kept: the next relonix build pushes it first');
      }
    });
  }

  /**
   * After nix-build has exited: takes the last entries, tries once more whatever failed before, and
   * returns what is still pending. Stops waiting once `deadline()` (ms since the epoch; a stop
   * signal may bring it forward meanwhile) has passed.
   */
  async finish(deadline: () => number = () => Infinity): Promise<UploadOutcome> {
    this.closing = true;
    this.wake?.();
    let ended = false;
    const work = (async () => {
      await this.looping;
      await this.poll();
      if (this.hasWork()) await this.attempt();
    })().finally(() => (ended = true));
    const late = (async () => {
      while (!ended && Date.now() < deadline()) await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline() - Date.now()))));
    })();
    await Promise.race([work, late]);
    return { pending: [...this.pending], error: this.lastError, abandoned: !ended };
  }
}
