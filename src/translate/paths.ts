// How Nix names store paths (libstore/store-api.cc): every name is a hash over what the path is,
// its content or recipe, and the store dir, so the same thing has other names in other stores.
import { createHash } from 'node:crypto';
import { fromNixBase32, toNixBase32 } from '../store/nixbase32.ts';
import { RelonixError } from '../util/errors.ts';

export type HashMethod = 'flat' | 'recursive';

/** How a content-addressed path was made: `fixed:[r:]<algo>:<hash>` or `text:sha256:<hash>`. */
export type ContentAddress = { kind: 'fixed'; method: HashMethod; algo: string; hex: string } | { kind: 'text'; hex: string };

const DIGEST_BYTES: Record<string, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256')
    .update(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
    .digest('hex');
}

/** Folds a digest into `size` bytes by xor, byte i into i mod size (Nix's compressHash). */
export function compressHash(digest: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < digest.length; i++) out[i % size]! ^= digest[i]!;
  return out;
}

/** `<storeDir>/<hash>-<name>` for a path of `type` over a sha256 given in hex. */
export function makeStorePath(type: string, sha256: string, name: string, storeDir: string): string {
  const digest = createHash('sha256').update(`${type}:sha256:${sha256}:${storeDir}:${name}`, 'latin1').digest();
  return `${storeDir}/${toNixBase32(compressHash(digest, 20))}-${name}`;
}

/** The name of output `output` of derivation `drvName`: `out` takes no suffix. */
export function outputPathName(drvName: string, output: string): string {
  return output === 'out' ? drvName : `${drvName}-${output}`;
}

/** An input-addressed output, from the derivation's modulo hash (hex). */
export function makeOutputPath(output: string, moduloHash: string, drvName: string, storeDir: string): string {
  return makeStorePath(`output:${output}`, moduloHash, outputPathName(drvName, output), storeDir);
}

/** `r:` for recursive (NAR) hashing, nothing for flat: the prefix Nix writes before the algorithm. */
export function methodPrefix(method: HashMethod): string {
  return method === 'recursive' ? 'r:' : '';
}

/**
 * A fixed-output path: a recursive sha256 is a `source` path (what adding a tree from disk makes),
 * anything else an `output:out` path over `fixed:out:<method><algo>:<hex>:`.
 */
export function makeFixedOutputPath(method: HashMethod, algo: string, hex: string, name: string, storeDir: string): string {
  checkDigest(algo, hex);
  if (method === 'recursive' && algo === 'sha256') return makeStorePath('source', hex, name, storeDir);
  return makeStorePath('output:out', sha256Hex(`fixed:out:${methodPrefix(method)}${algo}:${hex}:`), name, storeDir);
}

/** A path added from disk (`./file` in an expression): a `source` path over its NAR's sha256. */
export function makeSourcePath(name: string, narSha256: string, storeDir: string): string {
  return makeFixedOutputPath('recursive', 'sha256', narSha256, name, storeDir);
}

/** A `text` path (a `.drv` file, `builtins.toFile`): over its bytes, naming its references (a set: a path named twice counts once). */
export function makeTextPath(name: string, text: Uint8Array | string, references: readonly string[], storeDir: string): string {
  const refs = [...new Set(references)].sort(byBasename);
  return makeStorePath(['text', ...refs].join(':'), sha256Hex(text), name, storeDir);
}

/** Store paths in Nix's StorePathSet order: by base name, bytewise. */
export function byBasename(a: string, b: string): number {
  const x = a.slice(a.lastIndexOf('/') + 1);
  const y = b.slice(b.lastIndexOf('/') + 1);
  return x < y ? -1 : x > y ? 1 : 0;
}

function checkDigest(algo: string, hex: string): void {
  const bytes = DIGEST_BYTES[algo];
  if (bytes === undefined) throw badContentAddress(`hash algorithm "${algo}" is not one Nix knows (md5, sha1, sha256, sha512)`);
  if (hex.length !== bytes * 2 || !/^[0-9a-f]*$/.test(hex)) throw badContentAddress(`"${hex}" is not a ${algo} digest in lowercase hex`);
}

/** A content address (or a digest in one) that is not as Nix writes it: `problem` says what. */
export function badContentAddress(problem: string): RelonixError {
  return new RelonixError(problem, { kind: 'integrity', hint: 'content addresses come from the store (nix path-info --json, field "ca")' });
}

/** A digest as Nix prints it in `ca` fields (nix-base32) or in derivations (hex), as hex. */
export function digestHex(algo: string, digest: string): string {
  const bytes = DIGEST_BYTES[algo];
  if (bytes === undefined) throw badContentAddress(`hash algorithm "${algo}" is not one Nix knows (md5, sha1, sha256, sha512)`);
  if (digest.length === bytes * 2) return digest.toLowerCase();
  try {
    return fromNixBase32(digest, bytes).toString('hex');
  } catch (e) {
    throw badContentAddress(`"${digest}" is neither hex nor nix-base32 for ${algo}: ${(e as Error).message}`);
  }
}

/** Parses a `ca` field: `fixed:r:sha256:<digest>`, `fixed:sha1:<digest>`, `text:sha256:<digest>`. */
export function parseContentAddress(ca: string): ContentAddress {
  const parts = ca.split(':');
  if (parts[0] === 'text' && parts.length === 3 && parts[1] === 'sha256') return { kind: 'text', hex: digestHex('sha256', parts[2]!) };
  if (parts[0] === 'fixed') {
    const recursive = parts[1] === 'r';
    const rest = parts.slice(recursive ? 2 : 1);
    if (rest.length === 2) {
      const algo = rest[0]!;
      return { kind: 'fixed', method: recursive ? 'recursive' : 'flat', algo, hex: digestHex(algo, rest[1]!) };
    }
  }
  throw badContentAddress(`"${ca}" is not a content address (fixed:[r:]<algo>:<hash> or text:sha256:<hash>)`);
}
