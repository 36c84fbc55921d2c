// The single-file bundle of this relonix (dist/relonix.mjs): what is copied to run elsewhere, a
// builder over ssh or a prefix's translator. It is the running file itself, or a checkout's dist/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundle's path, or undefined in a checkout that has not built it (npm run build). */
export function findOwnBundle(): string | undefined {
  const here = fileURLToPath(import.meta.url);
  const bundle = path.basename(here) === 'relonix.mjs' ? here : path.resolve(path.dirname(here), '..', '..', 'dist', 'relonix.mjs');
  return existsSync(bundle) ? bundle : undefined;
}
