// src/store/: the store's own formats and tools: store paths, nix-base32, reginfo, NAR (nar/),
// and relocating a tree of store paths to another store dir.
import path from 'node:path';
import { StoreFormatError } from './errors.ts';
import { isNixBase32 } from './nixbase32.ts';

const NAME_RE = /^[A-Za-z0-9+\-._?=][A-Za-z0-9+\-._?=]*$/;

export interface StorePathParts {
  hash: string;
  name: string;
  basename: string;
}

/** Splits `<storeDir>/<32-char hash>-<name>` and checks both parts the way Nix does. */
export function parseStorePath(p: string, storeDir?: string): StorePathParts {
  if (storeDir && path.dirname(p) !== storeDir) throw new StoreFormatError(`${p} is not directly inside the store ${storeDir}`);
  return parseStoreBasename(path.basename(p));
}

export function parseStoreBasename(basename: string): StorePathParts {
  const hash = basename.slice(0, 32);
  if (basename.length < 34 || basename[32] !== '-' || !isNixBase32(hash)) {
    throw new StoreFormatError(`"${basename}" is not a store path name (<32-char nix-base32 hash>-<name>)`);
  }
  const name = basename.slice(33);
  if (!NAME_RE.test(name) || name.startsWith('.')) throw new StoreFormatError(`"${basename}" has an invalid name part`);
  return { hash, name, basename };
}

export function isStoreBasename(s: string): boolean {
  try {
    parseStoreBasename(s);
    return true;
  } catch {
    return false;
  }
}
