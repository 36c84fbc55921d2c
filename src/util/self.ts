// Where this relonix runs from. A bundle's entry names itself (scripts/bundle.ts): the code inside a
// split build runs from chunks/, whose own URL says nothing about the entry or the package. Without
// an entry, relonix runs from its TypeScript sources, this file being src/util/self.ts.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
  return path.dirname(path.basename(dist) === 'cli' ? path.dirname(dist) : dist);
}
