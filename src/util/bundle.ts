// The single-file bundle of this relonix (dist/relonix.mjs): what is copied to run elsewhere, a
// builder over ssh or a prefix's translator. It is the running file itself, or the package's (or a
// checkout's) dist/relonix.mjs beside the split build that runs.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { bundleEntry, isSplitEntry, packageRoot } from './self.ts';

/** The bundle's path, or undefined in a checkout that has not built it (npm run build). */
export function findOwnBundle(): string | undefined {
  const entry = bundleEntry();
  const single = entry && !isSplitEntry(entry) ? entry : path.join(packageRoot(), 'dist', 'relonix.mjs');
  return existsSync(single) ? single : undefined;
}
