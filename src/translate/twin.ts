// The twin of a derivation closure at another store dir: what Nix itself would have written had it
// evaluated the same expression there. Every store path in each ATerm is rewritten (inputs first),
// output and .drv paths are recomputed, and each source is renamed by its content.

import { byteOrder, type Derivation, printAterm, printDerivation } from '../store/aterm.ts';
import { isNixBase32 } from '../store/nixbase32.ts';
import { parseStorePath } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import { checkSupported, computeOutputs, derivationName, hashDerivationModulo, type ModuloHash, withOutputs } from './modulo.ts';
import { type HashMethod, makeFixedOutputPath, makeTextPath, methodPrefix } from './paths.ts';
import { notAStoreDir } from './replace.ts';

/** What a non-derivation input is, so that its twin can be named without reading it again. */
export type SourceContent =
  /** added from disk or fixed: the same bytes at the other store dir (`ca` fixed:…) */
  | { kind: 'fixed'; method: HashMethod; algo: string; hex: string }
  /** `builtins.toFile` (`ca` text:…): its bytes and references, both rewritten at the other store dir */
  | { kind: 'text'; text: Uint8Array; references: string[] };

export interface Closure {
  storeDir: string;
  /** every derivation of the closure, by .drv path */
  derivations: Map<string, Derivation>;
  /** every input source of the closure (and every reference of a text source) that is not a derivation */
  sources: Map<string, SourceContent>;
}

export interface Twin {
  /** the twin's .drv path */
  path: string;
  drv: Derivation;
  /** the .drv file's bytes */
  aterm: Buffer;
  /** output name -> path at the other store dir */
  outputs: Map<string, string>;
}

export interface Twins {
  /** by the .drv path in the closure's store dir */
  derivations: Map<string, Twin>;
  /** source path -> its twin */
  sources: Map<string, string>;
  /** hash part in the closure's store dir -> hash part at the other, for every derivation, output and source */
  hashes: Map<string, string>;
  /** store paths named in the closure's strings but not part of it: only their store dir was changed */
  unresolved: Set<string>;
  /** with `partial`: the derivations and sources that have no twin, and why (their dependents have none either) */
  refused: Map<string, RelonixError>;
}

type Owner = { kind: 'drv'; path: string; output?: string } | { kind: 'source'; path: string };

const NAME_CHAR = /[A-Za-z0-9+\-._?=]/;

/** The closure given lacks a derivation or a source's content address that a twin needs. */
export function closureIncomplete(what: string): RelonixError {
  return new RelonixError(`the closure is incomplete: ${what}`, {
    kind: 'usage',
    hint: 'pass every derivation of the closure and the content address of every input source',
  });
}

/** A path that its contents, by Nix's formulas, do not give. */
export function pathDoesNotFollow(path: string, storeDir: string, why: string): RelonixError {
  return new RelonixError(`${path} does not follow from its contents at ${storeDir}: ${why}`, {
    kind: 'integrity',
    hint: 'the closure was not written by a Nix whose path formulas relonix follows (2.4 to 2.8), or its content addresses are wrong',
  });
}

/** A derivation that is its own input, through others: no Nix writes one. */
export function inputCycle(p: string): RelonixError {
  return new RelonixError(`${p} refers to itself through its inputs`, {
    kind: 'integrity',
    hint: 'the derivations do not belong together: instantiate them again (nix-instantiate) and pass that closure',
  });
}

/**
 * Twins made one at a time and kept: computeTwins uses it for one closure, and a long-lived caller
 * (the translator) grows the closure with `add` and asks for twins as it needs them, each made once.
 */
export class TwinBuilder {
  readonly from: string;
  readonly out: Twins = { derivations: new Map(), sources: new Map(), hashes: new Map(), unresolved: new Set(), refused: new Map() };
  private readonly owners = new Map<string, Owner>();
  /** hash part at the other store dir -> ours: the inverse of out.hashes */
  private readonly back = new Map<string, string>();
  private readonly busy = new Set<string>();
  private readonly moduloFrom = new Map<string, ModuloHash>();
  private readonly moduloTo = new Map<string, ModuloHash>();

  constructor(
    readonly closure: Closure,
    readonly to: string,
  ) {
    this.from = closure.storeDir;
    for (const [p, drv] of closure.derivations) this.ownDerivation(p, drv);
    for (const p of closure.sources.keys()) this.own(p, { kind: 'source', path: p });
  }

  /** Adds what `more` has and the closure lacks; twins already made stay. */
  add(more: Closure): void {
    for (const [p, drv] of more.derivations) {
      if (this.closure.derivations.has(p)) continue;
      this.closure.derivations.set(p, drv);
      this.ownDerivation(p, drv);
    }
    for (const [p, c] of more.sources) {
      if (this.closure.sources.has(p)) continue;
      this.closure.sources.set(p, c);
      this.own(p, { kind: 'source', path: p });
    }
  }

  /** Our hash part of the path whose hash part at the other store dir is `theirs`, once its twin is made. */
  ours(theirs: string): string | undefined {
    return this.back.get(theirs);
  }

  /** The twin of a derivation of the closure, or why it has none (remembered, as the twin is). */
  tryDerivation(p: string): Twin | RelonixError {
    const known = this.out.refused.get(p);
    if (known) return known;
    try {
      return this.derivation(p);
    } catch (e) {
      if (!(e instanceof RelonixError)) throw e;
      this.out.refused.set(p, e);
      return e;
    }
  }

  private ownDerivation(p: string, drv: Derivation): void {
    this.own(p, { kind: 'drv', path: p });
    for (const o of drv.outputs) if (o.path) this.own(o.path, { kind: 'drv', path: p, output: o.name });
  }

  private own(p: string, owner: Owner): void {
    this.owners.set(parseStorePath(p, this.from).hash, owner);
  }

  /** The twin of any path of the closure. */
  twinOf(p: string): string {
    if (this.closure.derivations.has(p)) return this.derivation(p).path;
    if (this.closure.sources.has(p)) return this.source(p);
    throw closureIncomplete(`it lacks ${p}`);
  }

  private guard<T>(p: string, make: () => T): T {
    if (this.busy.has(p)) throw inputCycle(p);
    this.busy.add(p);
    try {
      return make();
    } finally {
      this.busy.delete(p);
    }
  }

  private map(a: string, b: string): void {
    const [ours, theirs] = [parseStorePath(a).hash, parseStorePath(b).hash];
    this.out.hashes.set(ours, theirs);
    this.back.set(theirs, ours);
  }

  source(p: string): string {
    const done = this.out.sources.get(p);
    if (done) return done;
    const c = this.closure.sources.get(p)!;
    const { name } = parseStorePath(p, this.from);
    const made = this.guard(p, () => {
      if (c.kind === 'fixed') {
        const at = (dir: string) => makeFixedOutputPath(c.method, c.algo, c.hex, name, dir);
        if (at(this.from) !== p) throw pathDoesNotFollow(p, this.from, `its content address is fixed:${methodPrefix(c.method)}${c.algo}:${c.hex}`);
        return at(this.to);
      }
      if (makeTextPath(name, c.text, c.references, this.from) !== p) throw pathDoesNotFollow(p, this.from, 'its text and references give another path');
      const text = Buffer.from(this.rewrite(Buffer.from(c.text).toString('latin1')), 'latin1');
      return makeTextPath(
        name,
        text,
        c.references.map((r) => this.twinOf(r)),
        this.to,
      );
    });
    this.out.sources.set(p, made);
    this.map(p, made);
    return made;
  }

  derivation(p: string): Twin {
    const done = this.out.derivations.get(p);
    if (done) return done;
    const drv = this.closure.derivations.get(p)!;
    checkSupported(drv, p);
    const twin = this.guard(p, () => {
      this.verify(p, drv);
      return this.make(p, drv);
    });
    this.out.derivations.set(p, twin);
    this.map(p, twin.path);
    for (const o of drv.outputs) this.map(o.path, twin.outputs.get(o.name)!);
    return twin;
  }

  private moduloOf(table: Map<string, ModuloHash>, what: string): (drvPath: string) => ModuloHash {
    return (drvPath) => {
      const h = table.get(drvPath);
      if (!h) throw closureIncomplete(`the modulo hash of ${drvPath} at ${what} is needed before it is known`);
      return h;
    };
  }

  /** Recomputes the derivation where it is: a closure whose paths we cannot reproduce cannot be translated. */
  private verify(p: string, drv: Derivation): void {
    const name = derivationName(p);
    for (const i of drv.inputDrvs) if (!this.closure.derivations.has(i.path)) throw closureIncomplete(`it lacks ${i.path}, an input of ${p}`);
    for (const i of drv.inputDrvs) this.derivation(i.path);
    const inputs = this.moduloOf(this.moduloFrom, this.from);
    const again = withOutputs(drv, computeOutputs(drv, name, this.from, inputs));
    if (printAterm(again) !== printAterm(drv)) throw pathDoesNotFollow(p, this.from, 'its output paths are not the ones its inputs give');
    const refs = [...drv.inputSrcs, ...drv.inputDrvs.map((i) => i.path)];
    if (makeTextPath(`${name}.drv`, printDerivation(drv), refs, this.from) !== p) throw pathDoesNotFollow(p, this.from, 'its text gives another .drv path');
    this.moduloFrom.set(p, hashDerivationModulo(drv, name, this.from, inputs, false));
  }

  private make(p: string, drv: Derivation): Twin {
    const name = derivationName(p);
    const rw = (s: string) => this.rewrite(s);
    // the env vars named after outputs hold this derivation's own paths, which are computed below
    const own = new Set(drv.outputs.map((o) => o.name));
    const inputDrvs = drv.inputDrvs.map((i) => ({ path: this.derivation(i.path).path, outputs: i.outputs }));
    const moved: Derivation = {
      outputs: drv.outputs,
      inputDrvs: inputDrvs.sort((a, b) => byteOrder(a.path, b.path)),
      inputSrcs: drv.inputSrcs.map((s) => this.twinOf(s)).sort(byteOrder),
      system: rw(drv.system),
      builder: rw(drv.builder),
      args: drv.args.map(rw),
      env: drv.env.map(([k, v]): [string, string] => [rw(k), own.has(k) ? '' : rw(v)]).sort(([a], [b]) => byteOrder(a, b)),
    };
    const inputs = this.moduloOf(this.moduloTo, this.to);
    const twinDrv = withOutputs(moved, computeOutputs(moved, name, this.to, inputs));
    const aterm = printDerivation(twinDrv);
    const path = makeTextPath(`${name}.drv`, aterm, [...twinDrv.inputSrcs, ...twinDrv.inputDrvs.map((i) => i.path)], this.to);
    this.moduloTo.set(path, hashDerivationModulo(twinDrv, name, this.to, inputs, false));
    return { path, drv: twinDrv, aterm, outputs: new Map(twinDrv.outputs.map((o) => [o.name, o.path])) };
  }

  /** The twin path of the store path whose hash part is `hash`, or undefined if the closure lacks it. */
  private twinHash(hash: string): string | undefined {
    const owner = this.owners.get(hash);
    if (!owner) return undefined;
    if (owner.kind === 'source') return parseStorePath(this.source(owner.path)).hash;
    const twin = this.derivation(owner.path);
    return parseStorePath(owner.output === undefined ? twin.path : twin.outputs.get(owner.output)!).hash;
  }

  /**
   * Moves every store path in `s` to the other store dir, under its twin's hash. A bare store dir
   * moves too (`builtins.storeDir` evaluates to the other one there); `/nix/store-x` does not.
   * Derivation outputs are blanked before hashing, so their own paths never reach here.
   */
  rewrite(s: string): string {
    let out = '';
    let from = 0;
    for (let i = s.indexOf(this.from); i >= 0; i = s.indexOf(this.from, i + 1)) {
      const after = i + this.from.length;
      if (i < from || (after < s.length && s[after] !== '/' && NAME_CHAR.test(s[after]!))) continue;
      const hash = s.slice(after + 1, after + 33);
      let moved = this.to;
      let end = after;
      if (s[after] === '/' && hash.length === 32 && isNixBase32(hash)) {
        const twin = this.twinHash(hash);
        if (twin) [moved, end] = [`${this.to}/${twin}`, after + 33];
        else this.out.unresolved.add(s.slice(i, after + 33) + (s.slice(after + 33).match(/^[A-Za-z0-9+\-._?=]*/)?.[0] ?? ''));
      }
      out += s.slice(from, i) + moved;
      from = end;
    }
    return out + s.slice(from);
  }

  /** Inputs before what uses them, without deep recursion through long chains. */
  order(): string[] {
    const seen = new Set<string>();
    const out: string[] = [];
    const edges = (p: string): string[] => {
      const d = this.closure.derivations.get(p);
      if (d) return [...d.inputDrvs.map((i) => i.path), ...d.inputSrcs];
      const c = this.closure.sources.get(p);
      return c?.kind === 'text' ? c.references : [];
    };
    for (const root of [...this.closure.derivations.keys(), ...this.closure.sources.keys()]) {
      if (seen.has(root)) continue;
      const stack: [string, number][] = [[root, 0]];
      seen.add(root);
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        const next = edges(top[0])[top[1]++];
        if (next === undefined) {
          out.push(stack.pop()![0]);
        } else if (!seen.has(next)) {
          seen.add(next);
          stack.push([next, 0]);
        }
      }
    }
    return out;
  }
}

/**
 * The twins of every derivation and source of `closure` at `storeDir`. One that cannot have a twin
 * (an unsupported kind of derivation, a path that does not follow from its contents) is refused:
 * an error, or with `partial` a record in `refused`, its dependents refused with it.
 */
export function computeTwins(closure: Closure, storeDir: string, opts: { partial?: boolean } = {}): Twins {
  if (!storeDir.startsWith('/') || storeDir.endsWith('/')) throw notAStoreDir(storeDir);
  const b = new TwinBuilder(closure, storeDir);
  for (const p of b.order()) {
    if (!closure.derivations.has(p) && !closure.sources.has(p)) continue;
    try {
      b.twinOf(p);
    } catch (e) {
      if (!opts.partial || !(e instanceof RelonixError)) throw e;
      b.out.refused.set(p, e);
    }
  }
  return b.out;
}
