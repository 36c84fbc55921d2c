// Nix's hashDerivationModulo (libstore/derivations.cc, as of 2.8): the hash that input-addressed
// output paths are made from. Each input .drv path is replaced by that input's own modulo hash, so a
// change that leaves a fixed output's content alone (another URL, say) changes no dependent.

import { byteOrder, type Derivation, type DerivationOutput, printAterm } from '../store/aterm.ts';
import { parseStorePath } from '../store/storepath.ts';
import { RelonixError } from '../util/errors.ts';
import { type HashMethod, makeFixedOutputPath, makeOutputPath, methodPrefix, sha256Hex } from './paths.ts';

/** A regular derivation hashes to one hex digest; a fixed-output one to one digest per output. */
export type ModuloHash = { fixed: false; hex: string } | { fixed: true; outputs: Map<string, string> };

export interface FixedHash {
  method: HashMethod;
  algo: string;
  hex: string;
}

/** The name of the derivation at `drvPath`: its store name without `.drv`. */
export function derivationName(drvPath: string): string {
  const { name } = parseStorePath(drvPath);
  if (!name.endsWith('.drv')) throw notADrvPath(drvPath);
  return name.slice(0, -4);
}

/** A path given as a derivation whose name does not end in .drv. */
export function notADrvPath(drvPath: string): RelonixError {
  return new RelonixError(`${drvPath} is not a derivation (its name does not end in .drv)`, {
    kind: 'usage',
    hint: 'pass .drv paths as nix-instantiate prints them, or nix-instantiate arguments after --',
  });
}

/** A derivation whose kind the output-path formulas here do not cover (`what`: which kind). */
export function untranslatableDerivation(drvPath: string, what: string): RelonixError {
  return new RelonixError(`${drvPath} is ${what}, which relonix cannot translate to another store dir`, {
    kind: 'usage',
    hint: 'only input-addressed and fixed-output derivations can be translated; Nix builds this one',
  });
}

/**
 * Refuses what the output-path formulas here do not cover: floating CA, impure or deferred outputs.
 * `__structuredAttrs` derivations are covered: their attributes are one JSON string (`__json`),
 * rewritten like any other, and they have no env vars named after their outputs.
 */
export function checkSupported(drv: Derivation, drvPath: string): void {
  if (drv.env.some(([k, v]) => k === '__contentAddressed' && v === '1'))
    throw untranslatableDerivation(drvPath, 'a content-addressed derivation (__contentAddressed)');
  if (drv.outputs.length === 0) throw untranslatableDerivation(drvPath, 'a derivation without outputs');
  // Nix writes an impure output with the hash "impure"
  if (drv.outputs.some((o) => o.hash === 'impure')) throw untranslatableDerivation(drvPath, 'an impure derivation (__impure)');
  if (fixedHash(drv, drvPath)) return;
  for (const o of drv.outputs) {
    if (o.hashAlgo || o.hash)
      throw untranslatableDerivation(drvPath, `a content-addressed derivation (__contentAddressed: its output "${o.name}" is not fixed)`);
    if (!o.path) throw untranslatableDerivation(drvPath, `a derivation whose output "${o.name}" has no path (deferred or impure)`);
  }
}

/** The hash of a fixed-output derivation (one output, `out`, with a hash), else undefined. */
export function fixedHash(drv: Derivation, drvPath = 'the derivation'): FixedHash | undefined {
  const [o, ...more] = drv.outputs;
  if (!o || more.length || !o.hash) return undefined;
  if (o.name !== 'out') throw untranslatableDerivation(drvPath, `a fixed-output derivation whose output is "${o.name}", not "out"`);
  const recursive = o.hashAlgo.startsWith('r:');
  const algo = recursive ? o.hashAlgo.slice(2) : o.hashAlgo;
  if (algo.includes(':')) throw untranslatableDerivation(drvPath, `a fixed-output derivation hashed as "${o.hashAlgo}"`);
  return { method: recursive ? 'recursive' : 'flat', algo, hex: o.hash };
}

function fixedOutputPath(h: FixedHash, drvName: string, storeDir: string): string {
  return makeFixedOutputPath(h.method, h.algo, h.hex, drvName, storeDir);
}

/**
 * The modulo hash of `drv`. `inputHash` gives an input's modulo hash by its .drv path (unmasked:
 * computed with `mask` false). `mask` blanks this derivation's output paths and the env vars named
 * after its outputs, which is how its own output paths are computed.
 */
export function hashDerivationModulo(
  drv: Derivation,
  drvName: string,
  storeDir: string,
  inputHash: (drvPath: string) => ModuloHash,
  mask: boolean,
): ModuloHash {
  const fixed = fixedHash(drv);
  if (fixed) {
    const out = fixedOutputPath(fixed, drvName, storeDir);
    const hex = sha256Hex(`fixed:out:${methodPrefix(fixed.method)}${fixed.algo}:${fixed.hex}:${out}`);
    return { fixed: true, outputs: new Map([['out', hex]]) };
  }
  // Nix keys the replaced inputs by hash (insert_or_assign): two inputs with one modulo hash keep the latter's outputs
  const inputs = new Map<string, string[]>();
  for (const i of drv.inputDrvs) {
    const h = inputHash(i.path);
    if (!h.fixed) inputs.set(h.hex, i.outputs);
    else for (const o of i.outputs) inputs.set(outputHash(h, o, i.path), ['out']);
  }
  const outputs = new Set(drv.outputs.map((o) => o.name));
  const replaced: Derivation = {
    ...drv,
    outputs: mask ? drv.outputs.map((o) => ({ ...o, path: '' })) : drv.outputs,
    inputDrvs: [...inputs].sort(([a], [b]) => byteOrder(a, b)).map(([path, outs]) => ({ path, outputs: outs })),
    env: mask ? drv.env.map(([k, v]) => [k, outputs.has(k) ? '' : v]) : drv.env,
  };
  return { fixed: false, hex: sha256Hex(printAterm(replaced)) };
}

function outputHash(h: { outputs: Map<string, string> }, output: string, drvPath: string): string {
  const hex = h.outputs.get(output);
  if (hex === undefined) throw noSuchOutput(output, drvPath);
  return hex;
}

/** A derivation's input names an output its input derivation does not have. */
export function noSuchOutput(output: string, drvPath: string): RelonixError {
  return new RelonixError(`a derivation uses output "${output}" of ${drvPath}, which has no such output`, {
    kind: 'integrity',
    hint: 'the derivations do not belong together: instantiate them again (nix-instantiate) and pass that closure',
  });
}

/**
 * The output paths `drv` has at `storeDir`: fixed ones from their hash, input-addressed ones from
 * the masked modulo hash. The paths already in `drv` are ignored.
 */
export function computeOutputs(drv: Derivation, drvName: string, storeDir: string, inputHash: (drvPath: string) => ModuloHash): DerivationOutput[] {
  const fixed = fixedHash(drv);
  if (fixed) return [{ ...drv.outputs[0]!, path: fixedOutputPath(fixed, drvName, storeDir) }];
  const h = hashDerivationModulo(drv, drvName, storeDir, inputHash, true);
  if (h.fixed) throw new Error('internal error: a derivation that is not fixed hashed as fixed');
  return drv.outputs.map((o) => ({ ...o, path: makeOutputPath(o.name, h.hex, drvName, storeDir) }));
}

/** `drv` with the given output paths, and the env vars named after its outputs set to them, as Nix writes it. */
export function withOutputs(drv: Derivation, outputs: DerivationOutput[]): Derivation {
  const byName = new Map(outputs.map((o) => [o.name, o.path]));
  return { ...drv, outputs, env: drv.env.map(([k, v]) => [k, byName.get(k) ?? v]) };
}
