// Where this relonix runs from. A bundle's entry names itself (scripts/bundle.ts): the code inside a
// split build runs from chunks/, whose own URL says nothing about the entry or the package. Without
// an entry, relonix runs from its TypeScript sources, this file being src/util/self.ts.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errnoCode, errorMessage, RelonixError } from './errors.ts';

/** The bundle file node loaded (dist/relonix.mjs, dist/cli/relonix.mjs, or a copy), or undefined from the sources. */
export function bundleEntry(): string | undefined {
  const url = (globalThis as Record<symbol, unknown>)[Symbol.for('relonix.entry')];
  return typeof url === 'string' ? fileURLToPath(url) : undefined;
}

/**
 * The folder holding this relonix's package (or checkout): the one with dist/ and patches/. For a
 * single file copied anywhere, the folder above it, which is no package (callers check what they need).
 */
export function packageRoot(): string {
  const entry = bundleEntry();
  if (!entry) return fileURLToPath(new URL('../..', import.meta.url));
  const dist = path.dirname(entry);
  return path.dirname(isSplitEntry(entry) ? path.dirname(dist) : dist);
}

/** Whether `entry` is the split build's (dist/cli/relonix.mjs), not a single file. */
export function isSplitEntry(entry: string): boolean {
  return path.basename(path.dirname(entry)) === 'cli';
}

/**
 * A part of the bundle that does not load when a command reaches it (a chunk deleted or cut short
 * after install): the package is damaged, as the launcher says when its entry does not load.
 */
export function packageDamaged(cause: unknown): RelonixError {
  const what = errorMessage(cause).split('\n')[0];
  return new RelonixError(`this relonix package is damaged: a part of it does not load (${what})`, {
    hint: 'install relonix again (npm install relonix, or npx relonix@latest)',
    cause,
  });
}

/** A module of this bundle that is missing or does not parse; never an error of the sources. */
export function isDamagedPart(e: unknown): boolean {
  if (bundleEntry() === undefined) return false;
  return errnoCode(e) === 'ERR_MODULE_NOT_FOUND' || (e instanceof SyntaxError && /chunks\//.test(e.stack ?? ''));
}
