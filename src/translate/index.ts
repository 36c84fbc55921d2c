// Translating a closure to another store dir: derivations in ATerm, their store paths and twins, a
// streaming NAR rewriter for store dirs of the same length, and the translation itself (upstream's
// outputs published for the prefix; translateForBuild is the pass a build runs first).
export { parseDerivation, printDerivation, type Derivation, type DerivationInput, type DerivationOutput } from './aterm.ts';
export { makeFixedOutputPath, makeOutputPath, makeSourcePath, makeStorePath, makeTextPath, parseContentAddress, type ContentAddress, type HashMethod } from './paths.ts';
export { checkSupported, computeOutputs, derivationName, hashDerivationModulo, withOutputs, type ModuloHash } from './modulo.ts';
export { computeTwins, type Closure, type SourceContent, type Twin, type Twins } from './twin.ts';
export { rewriteNar, type CompressedFile, type NarRewrite, type RewriteSummary } from './rewrite.ts';
export type { RewriteRules } from './replace.ts';
export type { ReferencesFound } from './compressed.ts';
export type { SpoolOptions } from './spool.ts';
export { instantiate, translateDerivations, translateForBuild, translatePaths, type TranslateOptions, type TranslateResult } from './translate.ts';
export { NIXOS_CACHE, NIXOS_KEY } from './upstream.ts';
