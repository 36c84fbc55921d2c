// Pure: what a translation will publish, from what the evaluation, upstream and the target hold.
// Derivation mode maps each of our outputs to its twin's upstream narinfo; path mode takes
// upstream paths as they are. Either way a path is published only with every reference it names
// (a cache never names a path it cannot serve).
import path from 'node:path';
import type { NarInfo } from '../cache/narinfo.ts';
import type { Derivation } from '../store/aterm.ts';
import { fixedHash } from './modulo.ts';
import type { Closure, Twins } from './twin.ts';

export interface TranslateItem {
  /** the path in our store */
  path: string;
  /** upstream's narinfo, its signature checked */
  from: NarInfo;
  /** our paths of its references */
  references: string[];
  deriver?: string;
  /** upstream hash part -> ours: its own and its references' (empty: only the store dir changes) */
  hashes: Map<string, string>;
  /** a fixed output: its path is its content, so its NAR is copied byte for byte */
  verbatim: boolean;
}

export interface Refusal {
  path: string;
  why: string;
}

export interface Plan {
  items: TranslateItem[];
  /** our paths the target has already */
  present: string[];
  /** our outputs upstream does not have: Nix builds them */
  missing: string[];
  /** our outputs (or derivations) that cannot be translated, and why: Nix builds them too */
  refused: Refusal[];
  /** sources of our store that translated paths name: published from the store as they are */
  sources: string[];
}

const hashOf = (p: string) => path.basename(p).slice(0, 32);

/** The NAR compressions relonix reads; upstream paths in another (old bzip2 ones) are left to build. */
const READABLE = new Set(['xz', 'zstd', 'none']);

function unreadable(ni: NarInfo, mine: string): Refusal | undefined {
  return READABLE.has(ni.compression) ? undefined : { path: mine, why: `upstream serves it compressed with ${ni.compression}, which relonix does not read` };
}

export interface DerivationFacts {
  storeDir: string;
  closure: Closure;
  twins: Twins;
  /** upstream's narinfos of the twins' outputs it has, by upstream path */
  upstream: Map<string, NarInfo>;
  /** our paths the target has */
  present: Set<string>;
}

/**
 * One output of ours whose twin upstream has (`ni`, its signature checked): the item that
 * translates it, or why it cannot be. `ours` maps an upstream hash part to ours.
 */
export function planOutput(
  storeDir: string,
  drvPath: string,
  drv: Derivation,
  output: string,
  ni: NarInfo,
  ours: (theirs: string) => string | undefined,
): TranslateItem | Refusal {
  const mine = drv.outputs.find((o) => o.name === output)!.path;
  const odd = unreadable(ni, mine);
  if (odd) return odd;
  const refs = ni.references.map((r) => ({ r, mine: ours(r.slice(0, 32)) }));
  const unknown = refs.find((x) => !x.mine);
  if (unknown) return { path: mine, why: `upstream's build names ${unknown.r}, which is not part of this evaluation` };
  const hashes = new Map([[hashOf(ni.storePath), hashOf(mine)], ...refs.map(({ r, mine }): [string, string] => [r.slice(0, 32), mine!])]);
  const references = refs.map(({ r, mine }) => path.join(storeDir, mine! + r.slice(32)));
  return { path: mine, from: ni, references, deriver: drvPath, hashes, verbatim: fixedHash(drv) !== undefined };
}

/** Each output of the evaluation: in the target, translatable from upstream, or left to build. */
export function planDerivations(f: DerivationFacts): Plan {
  const plan: Plan = { items: [], present: [], missing: [], refused: [], sources: [] };
  const ours = new Map([...f.twins.hashes].map(([mine, theirs]) => [theirs, mine]));
  for (const [drvPath, why] of f.twins.refused) plan.refused.push({ path: drvPath, why: why.message });
  for (const [drvPath, twin] of f.twins.derivations) {
    const drv = f.closure.derivations.get(drvPath)!;
    for (const o of drv.outputs) {
      const ni = f.upstream.get(twin.outputs.get(o.name)!);
      if (f.present.has(o.path)) plan.present.push(o.path);
      else if (!ni) plan.missing.push(o.path);
      else {
        const planned = planOutput(f.storeDir, drvPath, drv, o.name, ni, (h) => ours.get(h));
        if ('from' in planned) plan.items.push(planned);
        else plan.refused.push(planned);
      }
    }
  }
  return complete(plan, new Set([...plan.present, ...f.closure.sources.keys()]), f.closure.sources);
}

/** Path mode: upstream's closure as it is, each path under its own hash part in our store dir. */
export function planPaths(storeDir: string, upstream: Map<string, NarInfo>, present: Set<string>): Plan {
  const plan: Plan = { items: [], present: [], missing: [], refused: [], sources: [] };
  const moved = (basename: string) => path.join(storeDir, basename);
  for (const ni of upstream.values()) {
    const mine = moved(path.basename(ni.storePath));
    const odd = unreadable(ni, mine);
    if (present.has(mine)) plan.present.push(mine);
    else if (odd) plan.refused.push(odd);
    else
      plan.items.push({
        path: mine,
        from: ni,
        references: ni.references.map(moved),
        deriver: ni.deriver && moved(ni.deriver),
        hashes: new Map(),
        verbatim: false,
      });
  }
  return complete(plan, new Set(plan.present), new Map());
}

/**
 * Drops the items that name a path which will not be served (neither there already, nor
 * translated, nor a source to publish), until none does; then lists the sources to publish.
 */
function complete(plan: Plan, served: Set<string>, sources: ReadonlyMap<string, unknown>): Plan {
  let items = plan.items;
  for (;;) {
    const publishing = new Set(items.map((it) => it.path));
    const gap = (it: TranslateItem) => it.references.find((r) => r !== it.path && !publishing.has(r) && !served.has(r));
    const kept = items.filter((it) => {
      const r = gap(it);
      if (r) plan.refused.push({ path: it.path, why: `it needs ${r}, which is neither in the target nor translatable` });
      return !r;
    });
    if (kept.length === items.length) break;
    items = kept;
  }
  plan.items = items;
  const have = new Set(plan.present);
  plan.sources = [...new Set(items.flatMap((it) => it.references.filter((r) => sources.has(r) && !have.has(r))))].sort();
  return plan;
}
