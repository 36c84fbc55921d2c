// What the store layer finds wrong: a file tree that a store path cannot be, and text that is not a
// store path name, nix-base32 or a .reginfo as Nix writes them.
import { RelonixError } from '../util/errors.ts';

/**
 * Text that is not a store path, nix-base32 or a .reginfo as Nix writes them: the store parsers' one
 * error type. The layer that took the text from the user or a server says what it was, and the fix.
 */
export class StoreFormatError extends Error {}

/** A fifo, socket or device where a store path holds only files, directories and symlinks. */
export function notStorable(p: string): RelonixError {
  return new RelonixError(`${p} is neither a file, a directory nor a symlink, which a store path cannot hold`, {
    kind: 'integrity',
    hint: 'check the store: relonix run -- nix-store --verify --check-contents',
  });
}

/** A file whose size changed while relonix read it: something writes where nothing should. */
export function changedWhileRead(p: string, got: number, expected: number): RelonixError {
  return new RelonixError(`${p} changed while it was read (${got} bytes, not ${expected})`, {
    hint: 'a store path never changes: find what writes to it, then run the same command again',
  });
}
