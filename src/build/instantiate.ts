// The evaluating half of a split pipeline (`relonix instantiate`): the prefix's nix-instantiate
// evaluates, nothing is built, and the closure of every resulting .drv (the derivations and the
// sources they name) goes to the cache, signed. A host that never sees the expression then builds
// the .drv paths with `relonix build`, which substitutes them from that cache like any other path.

import { readSecretKeyFile } from '../cache/key-files.ts';
import { publishFromPrefix } from '../cache/publish-prefix.ts';
import { openTarget } from '../cache/targets.ts';
import { activeNix } from '../prefix/environment.ts';
import type { Layout } from '../prefix/layout.ts';
import { instantiate } from '../prefix/tools.ts';
import { nixSystem } from '../util/system.ts';
import { nixMissingFromCache } from './nix.ts';

export interface InstantiateOptions {
  layout: Layout;
  cache: string;
  secretKeyFile: string;
  /** nix-instantiate's arguments */
  args: string[];
  log: (msg: string) => void;
}

export interface InstantiateResult {
  drvs: string[];
  /** paths in the published closure of the .drv files */
  closure: number;
  uploaded: number;
  /** the prefix's Nix, published and named in the manifest because the cache named another or none */
  nixPublished?: string;
}

export async function instantiateToCache(o: InstantiateOptions): Promise<InstantiateResult> {
  const l = o.layout;
  // a key that cannot sign is refused before an evaluation that may take minutes
  const secretKey = await readSecretKeyFile(o.secretKeyFile);
  const drvs = await instantiate(l, o.args);
  const common = { layout: l, to: o.cache, secretKey, compression: 'auto', log: o.log };
  const r = await publishFromPrefix({ ...common, paths: drvs });
  // the building host may start from nothing: it restores its Nix from the same cache, as
  // relonix build does after a wipe, so the cache names this one unless it names it already
  const n = await activeNix(l);
  const missing = await nixMissingFromCache(openTarget(o.cache, { netrc: l.netrcFile }), { ...n, restored: false }, nixSystem());
  if (missing) await publishFromPrefix({ ...common, paths: [] });
  return { drvs, closure: r.closure, uploaded: r.uploaded, nixPublished: missing?.nix };
}
