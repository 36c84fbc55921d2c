// src/translate/: serving a prefix from a cache built for another store dir of the same length:
// derivations in ATerm, their paths and twins (aterm, paths, modulo, twin), the NAR rewriter, and this.
//
// relonix translate: what an upstream cache built for its store dir, published for ours. Read and
// check everything first (upstream's store dir and signatures, the target's store dir), plan, then
// publish every NAR before any narinfo, so that a refusal anywhere leaves nothing published and a
// killed run leaves no narinfo without its NAR.
import path from 'node:path';
import { type CompressionChoice, checkCompressionChoice } from '../cache/compress.ts';
import { Journal } from '../cache/journal.ts';
import { readSecretKeyFile } from '../cache/key-files.ts';
import type { SecretKey } from '../cache/keys.ts';
import { checkCacheInfo } from '../cache/meta.ts';
import { narInfoKey } from '../cache/narinfo.ts';
import { localItem, publishItems } from '../cache/publish.ts';
import { type CacheTarget, openTarget, type TargetOptions } from '../cache/targets.ts';
import { activeNix } from '../prefix/environment.ts';
import { type Layout, layout } from '../prefix/layout.ts';
import { instantiate } from '../prefix/tools.ts';
import { parseStoreBasename } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import { pool } from '../util/pool.ts';
import { redactUrl } from '../util/redact.ts';
import { POLICY, retry } from '../util/retry.ts';
import { loadClosure } from './closure.ts';
import { type ItemContext, translatedItem } from './item.ts';
import { type Plan, planDerivations, planPaths, type Refusal } from './plan.ts';
import type { CompressedFile } from './rewrite.ts';
import { computeTwins } from './twin.ts';
import { NIXOS_CACHE, NIXOS_KEY, openUpstream, type Upstream, upstreamClosure, upstreamNarInfos } from './upstream.ts';

export interface TranslateOptions {
  layout: Layout;
  /** the cache translated from (default cache.nixos.org) and its public keys (default its key) */
  from?: string;
  fromKeys?: string[];
  /** the cache translated to, for our store dir */
  to: string;
  key: SecretKey;
  compression?: CompressionChoice;
  jobs?: number;
  targetOptions?: TargetOptions;
  log?: (msg: string) => void;
}

export interface TranslateResult {
  from: string;
  to: string;
  /** paths whose narinfos this run wrote: translated ones and the sources they name */
  published: string[];
  /** paths the target had already */
  present: string[];
  /** outputs upstream does not have (derivation mode): nix-build builds them */
  missing: string[];
  refused: Refusal[];
  /** translated paths with store references inside compressed data, which stay as upstream wrote them */
  compressed: { path: string; files: CompressedFile[] }[];
  narBytes: number;
}

interface Opened {
  upstream: Upstream;
  target: CacheTarget;
}

/** Both caches checked before any work: upstream's store dir as long as ours, the target's ours. */
async function openBoth(o: TranslateOptions): Promise<Opened> {
  const l = o.layout;
  const upstream = await openUpstream(o.from ?? NIXOS_CACHE, o.fromKeys?.length ? o.fromKeys : [NIXOS_KEY], l.storeDir, o.targetOptions);
  const target = openTarget(o.to, o.targetOptions);
  await retry(() => checkCacheInfo(target, l.storeDir), POLICY.lookup);
  return { upstream, target };
}

/** Which of our paths the target has. */
async function inTarget(target: CacheTarget, paths: string[]): Promise<Set<string>> {
  const has = await pool(paths, 16, (p) => retry(() => target.has(narInfoKey(p)), POLICY.lookup));
  return new Set(paths.filter((_, i) => has[i]));
}

/**
 * Derivation mode: each derivation of the closure of `drvs` gets its twin at upstream's store dir;
 * every output upstream has is translated (hash parts and store dir rewritten to ours).
 */
export async function translateDerivations(o: TranslateOptions, drvs: string[]): Promise<TranslateResult> {
  const l = o.layout;
  const { nix } = await activeNix(l);
  const c = await openBoth(o);
  o.log?.(`reading the closure of ${drvs.length} derivation${drvs.length === 1 ? '' : 's'}`);
  const { closure, records } = await loadClosure({ layout: l, nix }, drvs);
  const twins = computeTwins(closure, c.upstream.storeDir, { partial: true });
  const outputs = [...twins.derivations].flatMap(([p, tw]) =>
    closure.derivations.get(p)!.outputs.map((out) => ({ ours: out.path, theirs: tw.outputs.get(out.name)! })),
  );
  const present = await inTarget(
    c.target,
    outputs.map((x) => x.ours),
  );
  o.log?.(`asking ${c.upstream.target.url} for ${outputs.length - present.size} of ${outputs.length} outputs (the rest are in ${c.target.url})`);
  const upstream = await upstreamNarInfos(
    c.upstream,
    outputs.filter((x) => !present.has(x.ours)).map((x) => x.theirs),
  );
  const plan = planDerivations({ storeDir: l.storeDir, closure, twins, upstream, present });
  const sources = await inTarget(c.target, plan.sources);
  plan.sources = plan.sources.filter((s) => !sources.has(s));
  return publishPlan(
    o,
    c,
    plan,
    plan.sources.map((s) => localItem(records.get(s)!)),
  );
}

/** An argument of path mode that is not a store path. */
export function notAStorePathArg(p: string, cause?: unknown): RelonixError {
  return new RelonixError(`"${p}" is not a store path`, {
    kind: 'usage',
    hint: 'name store paths as upstream has them (/nix/store/<hash>-hello-2.12), or put nix-instantiate arguments after --',
    cause,
  });
}

/** Path mode: upstream's closure of `paths` as it is, each hash part kept, only the store dir ours. */
export async function translatePaths(o: TranslateOptions, paths: string[]): Promise<TranslateResult> {
  const c = await openBoth(o);
  const roots = paths.map((p) => {
    try {
      return path.join(c.upstream.storeDir, parseStoreBasename(path.basename(p)).basename);
    } catch (e) {
      throw notAStorePathArg(p, e);
    }
  });
  const upstream = await upstreamClosure(c.upstream, roots);
  const present = await inTarget(
    c.target,
    [...upstream.keys()].map((p) => path.join(o.layout.storeDir, path.basename(p))),
  );
  return publishPlan(o, c, planPaths(o.layout.storeDir, upstream, present), []);
}

/**
 * The translation pass of a build: `drvs` (as `relonix instantiate` prints them) translated from
 * upstream into `to` before nix-build runs with `to` as a substituter.
 */
export function translateForBuild(o: TranslateOptions & { drvs: string[] }): Promise<TranslateResult> {
  return translateDerivations(o, o.drvs);
}

async function publishPlan(o: TranslateOptions, c: Opened, plan: Plan, local: ReturnType<typeof localItem>[]): Promise<TranslateResult> {
  const l = o.layout;
  const ctx: ItemContext = { layout: l, upstream: c.upstream, compressed: new Map() };
  const items = [...plan.items.map((it) => translatedItem(ctx, it)), ...local];
  o.log?.(
    `translating ${plan.items.length} paths${local.length ? ` and publishing ${local.length} sources` : ''}; ${plan.present.length} are in ${redactUrl(o.to)}, ${plan.missing.length} not in upstream`,
  );
  const r = await publishItems(
    {
      target: c.target,
      storeDir: l.storeDir,
      key: o.key,
      compression: o.compression,
      jobs: o.jobs,
      log: o.log,
      commit: 'end',
      journal: new Journal(path.join(l.relonixDir, 'translate', 'journal')),
    },
    items,
  );
  return {
    from: c.upstream.target.url,
    to: redactUrl(o.to),
    published: r.published.sort(),
    present: [...plan.present, ...plan.items.map((it) => it.path).filter((p) => !r.published.includes(p))].sort(),
    missing: plan.missing.sort(),
    refused: plan.refused,
    compressed: [...ctx.compressed].map(([p, files]) => ({ path: p, files })).sort((a, b) => (a.path < b.path ? -1 : 1)),
    narBytes: r.narBytes,
  };
}

/** relonix translate as its command line gives it: options by name, files by path. */
export interface TranslateRequest {
  prefix?: string;
  from: string;
  fromKeys: string[];
  to: string;
  secretKeyFile: string;
  /** auto, zstd, xz or none, as given */
  compression: string;
  jobs: number;
  headers: string[];
  /** the arguments are nix-instantiate's (they came after --), else store paths */
  derivations: boolean;
  args: string[];
  log: (msg: string) => void;
}

/** One call for the command: the compression and the key checked before any work, then one mode or the other. */
export async function runTranslate(r: TranslateRequest): Promise<TranslateResult> {
  const l = layout(r.prefix);
  const opts: TranslateOptions = {
    layout: l,
    from: r.from,
    fromKeys: r.fromKeys,
    to: r.to,
    compression: checkCompressionChoice(r.compression),
    key: await readSecretKeyFile(r.secretKeyFile),
    jobs: r.jobs,
    targetOptions: { headers: r.headers, netrc: l.netrcFile },
    log: r.log,
  };
  return r.derivations ? translateDerivations(opts, await instantiate(l, r.args)) : translatePaths(opts, r.args);
}
