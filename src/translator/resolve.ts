// The answer to one narinfo request: the derivation with that output (in the store: Nix has
// instantiated it), its twin at upstream's store dir (the closure's twins are made once and kept),
// upstream's narinfo of the twin's output (its signature checked) and NAR (its hash checked),
// rewritten for our store dir and signed with the prefix's key, into the file cache. The narinfo
// is written only after the whole NAR is in the cache and checked: what Nix is told is what it gets.
// A path's references are started as soon as its upstream narinfo names them: Nix asks for them
// only once it has this answer, one level of the closure at a time.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkSigned, readNarInfo } from '../cache/closure.ts';
import type { SecretKey } from '../cache/keys.ts';
import type { NarInfo } from '../cache/narinfo.ts';
import type { Layout } from '../prefix/layout.ts';
import { loadClosure } from '../translate/closure.ts';
import { planOutput, type TranslateItem } from '../translate/plan.ts';
import { type Closure, TwinBuilder } from '../translate/twin.ts';
import { openUpstream, type Upstream } from '../translate/upstream.ts';
import { errorMessage, isKind, RelonixError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { Limit } from '../util/pool.ts';
import type { TranslatorConfig, TranslatorFiles, UpstreamConfig } from './config.ts';
import { DerivationIndex, type OutputOf } from './derivations.ts';
import { FileCache } from './keep.ts';
import { type Notes, untranslatableReason } from './notes.ts';
import { Progress } from './progress.ts';
import { TranslateThreads } from './threads.ts';
import type { ThreadReply } from './translate-thread.ts';

/**
 * Translations at once, on the translator's threads (one per core: src/translator/threads.ts). Each
 * is CPU work (decoding, rewriting, hashing) and holds up to its spool's memory: Nix asks up to 25
 * narinfos at once, and 25 interleaved rewrites each take longer, and take more memory and garbage
 * collection in all, than a few at a time. Twice the cores, and at least four, keeps downloads in
 * flight on a slow link while others are rewritten.
 */
const AT_ONCE = Math.max(4, 2 * os.availableParallelism());

/** How long an upstream that failed is not asked again: Nix's own HTTP store waits as long. */
const DOWN_MS = 60_000;

interface UpstreamSlot {
  config: UpstreamConfig;
  opened?: Upstream;
  downUntil: number;
}

export interface TranslatorContext {
  layout: Layout;
  config: TranslatorConfig;
  files: TranslatorFiles;
  key: SecretKey;
  /** the prefix's active Nix, whose nix-store reads the closures */
  nix: string;
  notes: Notes;
  /** the server's log */
  log: (s: string) => void;
}

/** A failure to reach upstream, rather than something wrong with what it sent. */
function unreachable(e: unknown): boolean {
  return !isKind(e, 'integrity') && !isKind(e, 'usage');
}

export class Translator {
  private readonly index: DerivationIndex;
  private readonly cache: FileCache;
  private readonly upstreams: UpstreamSlot[];
  /** one twin builder per upstream store dir */
  private readonly builders = new Map<string, TwinBuilder>();
  /** closures are read one at a time: a closure read for one request usually holds the next ones' */
  private loads: Promise<unknown> = Promise.resolve();
  private readonly inflight = new Map<string, Promise<Buffer | undefined>>();
  /** the closures read so far, and their derivations */
  private readonly loaded: Closure[] = [];
  private readonly loadedDrvs = new Set<string>();
  private readonly work = new Limit(AT_ONCE);
  /** references started ahead already: each is looked for in the store once */
  private readonly started = new Set<string>();
  private readonly threads = new TranslateThreads();
  private readonly progress: Progress;
  private kept: Promise<unknown> = Promise.resolve();

  constructor(private readonly c: TranslatorContext) {
    this.index = new DerivationIndex(c.layout.storeDir, (drv, why) => c.notes.untranslatable(drv, untranslatableReason(why.message), true));
    this.cache = new FileCache(c.files.cache, c.key);
    this.upstreams = c.config.upstreams.map((config) => ({ config, downUntil: 0 }));
    this.progress = new Progress({
      say: (text) => {
        c.log(text.trim());
        return c.notes.tell(text).catch(() => undefined);
      },
      // one write at a time, so the last state is the one left (or its removal)
      keep: (state) => {
        this.kept = this.kept
          .then(() =>
            state ? writeFileAtomic(c.files.now, `${JSON.stringify({ pid: process.pid, ...state })}\n`, 0o600) : fs.rm(c.files.now, { force: true }),
          )
          .catch(() => undefined);
        return this.kept;
      },
    });
  }

  /** The narinfo of our path with hash part `hash`, or undefined: Nix then builds it. Requests for one path share the work. */
  narinfo(hash: string): Promise<Buffer | undefined> {
    let p = this.inflight.get(hash);
    if (!p) {
      p = this.answer(hash).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, p);
    }
    return p;
  }

  /** Clears what a killed translator left half-staged: before the first request. */
  async start(): Promise<void> {
    // what a killed server left of its last burst is no one's now
    await fs.rm(this.c.files.now, { force: true });
    await this.cache.open();
  }

  /** A narinfo as Nix is given it (see FileCache.served). */
  served(text: Buffer): Buffer {
    return this.cache.served(text);
  }

  /** The path of a NAR in the file cache, for `nar/NAME` requests. */
  narFile(name: string): string {
    return this.cache.narFile(name);
  }

  private async answer(hash: string): Promise<Buffer | undefined> {
    const kept = await this.cache.narinfo(hash);
    if (kept) return kept;
    const out = await this.index.find(hash);
    if (!out) return undefined;
    // a translation is likely due: its threads start while the closure is read
    this.threads.warm();
    await this.load(out.drvPath);
    for (const slot of this.upstreams) {
      const up = await this.reach(slot);
      if (!up) continue;
      const item = await this.plan(up, out);
      if (item === 'refused') return undefined;
      if (!item) continue;
      this.ahead(item);
      if (!(await this.translate(up, item))) return undefined;
      return this.cache.narinfo(hash);
    }
    return undefined;
  }

  /** Starts the references Nix will ask for next (those not in the store), as if it had asked. */
  private ahead(item: TranslateItem): void {
    for (const ref of item.references) {
      if (ref === item.path || this.started.has(ref)) continue;
      this.started.add(ref);
      void fs.lstat(ref).then(
        () => undefined, // in the store already: Nix will not ask
        () => this.narinfo(path.basename(ref).slice(0, 32)).catch(() => undefined),
      );
    }
  }

  private load(drvPath: string): Promise<unknown> {
    const next = this.loads.then(async () => {
      if (this.loadedDrvs.has(drvPath)) return;
      const t0 = Date.now();
      const { closure } = await loadClosure({ layout: this.c.layout, nix: this.c.nix }, [drvPath]);
      this.c.log(`read the closure of ${drvPath}: ${closure.derivations.size} derivations, ${closure.sources.size} sources, ${Date.now() - t0} ms`);
      for (const p of closure.derivations.keys()) this.loadedDrvs.add(p);
      this.loaded.push(closure);
      for (const b of this.builders.values()) b.add(closure);
    });
    this.loads = next.catch(() => undefined);
    return next;
  }

  private builder(storeDir: string): TwinBuilder {
    let b = this.builders.get(storeDir);
    if (!b) {
      b = new TwinBuilder({ storeDir: this.c.layout.storeDir, derivations: new Map(), sources: new Map() }, storeDir);
      for (const c of this.loaded) b.add(c);
      this.builders.set(storeDir, b);
    }
    return b;
  }

  /** The upstream, opened (its store dir as long as ours), or undefined while it cannot be reached. */
  private async reach(slot: UpstreamSlot): Promise<Upstream | undefined> {
    if (slot.opened) return slot.opened;
    if (Date.now() < slot.downUntil) return undefined;
    try {
      slot.opened = await openUpstream(slot.config.url, slot.config.keys, this.c.layout.storeDir, {}, 0);
      this.builder(slot.opened.storeDir);
      await this.c.notes.reachable(slot.config.url);
      return slot.opened;
    } catch (e) {
      slot.downUntil = Date.now() + DOWN_MS;
      await this.c.notes.unreachable(slot.config.url, errorMessage(e));
      return undefined;
    }
  }

  /** What to translate from `up` for the output `out`; undefined when upstream lacks it, 'refused' when it must not be used. */
  private async plan(up: Upstream, out: OutputOf): Promise<TranslateItem | 'refused' | undefined> {
    const b = this.builder(up.storeDir);
    const twin = b.tryDerivation(out.drvPath);
    if (twin instanceof RelonixError) {
      await this.c.notes.untranslatable(out.drvPath, untranslatableReason(twin.message));
      return 'refused';
    }
    const drv = b.closure.derivations.get(out.drvPath)!;
    const mine = drv.outputs.find((o) => o.name === out.output)!.path;
    let ni: NarInfo | undefined;
    try {
      ni = await readNarInfo(up.target, twin.outputs.get(out.output)!, 0);
      if (ni) checkSigned(ni, up.keys);
    } catch (e) {
      if (unreachable(e)) {
        await this.c.notes.unreachable(up.target.url, errorMessage(e));
        return undefined;
      }
      await this.c.notes.refused(mine, `${up.target.url}: ${errorMessage(e)}`);
      return 'refused';
    }
    await this.c.notes.reachable(up.target.url);
    if (!ni) return undefined;
    const planned = planOutput(this.c.layout.storeDir, out.drvPath, drv, out.output, ni, (h) => b.ours(h));
    if ('from' in planned) return planned;
    await this.c.notes.refused(mine, planned.why);
    return 'refused';
  }

  /** Upstream's NAR rewritten into the file cache on a thread, checked before its narinfo is written; false when refused. */
  private async translate(up: Upstream, item: TranslateItem): Promise<boolean> {
    const ended = this.progress.begin(item.from.narSize);
    let ok = false;
    try {
      ok = await this.translateNow(up, item);
    } finally {
      await ended(ok);
    }
    return ok;
  }

  private async translateNow(up: Upstream, item: TranslateItem): Promise<boolean> {
    // the time the log gives is the translation's own, not its wait for a turn
    let t0 = 0;
    const r = await this.work.run(async (): Promise<ThreadReply> => {
      t0 = Date.now();
      let file: string | undefined;
      try {
        file = await this.cache.stagingFile();
        const r = await this.threads.run({ layout: this.c.layout, upstream: { url: up.target.url, storeDir: up.storeDir }, item, file });
        if (r.ok) await this.cache.commit(item, r.staged, file, r.ca);
        return r;
      } catch (e) {
        return { id: 0, ok: false, message: errorMessage(e), integrity: false };
      } finally {
        if (file) await fs.rm(file, { force: true });
      }
    });
    if (!r.ok) {
      if (r.integrity) await this.c.notes.refused(item.path, r.message);
      else await this.c.notes.failed(item.path, r.message);
      return false;
    }
    this.c.log(`translated ${item.path} from ${item.from.storePath} (${item.from.narSize} bytes) in ${Date.now() - t0} ms`);
    if (r.compressed.length)
      await this.c.notes.compressed(
        item.path,
        r.compressed.map((f) => f.file),
      );
    return true;
  }
}
