// The translation pass a build runs first (`relonix build --translate-from URL`): every output the
// upstream cache already built for /nix/store is published, rewritten for this prefix, to the
// build's cache, so nix-build substitutes it instead of building it.

import type { SecretKey } from '../cache/keys.ts';
import type { Layout } from '../prefix/layout.ts';
import { instantiate } from '../prefix/tools.ts';

/** nix-build's options that nix-instantiate does not take, with how many values each consumes. */
const BUILD_ONLY: Record<string, number> = {
  '--no-out-link': 0,
  '--out-link': 1,
  '-o': 1,
  '--drv-link': 1,
  '--dry-run': 0,
  '--check': 0,
  '--repair': 0,
};

/** Pure: nix-build's arguments as nix-instantiate takes them (the same expression, attributes and options). */
export function instantiateArgs(buildArgs: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < buildArgs.length; i++) {
    const a = buildArgs[i]!;
    const skip = BUILD_ONLY[a];
    if (skip === undefined) out.push(a);
    else i += skip;
  }
  return out;
}

export interface TranslateFirstOptions {
  layout: Layout;
  from: string;
  fromKeys: string[];
  /** the build's cache, where the translated outputs go */
  to: string;
  key: SecretKey;
  /** nix-build's arguments: .drv paths as they are, anything else evaluated */
  args: string[];
  log: (msg: string) => void;
}

export async function translateFirst(o: TranslateFirstOptions): Promise<{ published: number; present: number; missing: number }> {
  // loaded on use: a build without --translate-from never pays for the translator
  const { translateForBuild } = await import('../translate/translate.ts');
  const given = o.args.filter((a) => a.endsWith('.drv') && a.startsWith(`${o.layout.storeDir}/`));
  // instantiate refuses an evaluation that gives no derivation (noDerivation)
  const drvs =
    given.length === o.args.filter((a) => !a.startsWith('-')).length && given.length > 0 ? given : await instantiate(o.layout, instantiateArgs(o.args));
  const r = await translateForBuild({ layout: o.layout, from: o.from, fromKeys: o.fromKeys, to: o.to, key: o.key, drvs, log: o.log });
  return { published: r.published.length, present: r.present.length, missing: r.missing.length };
}
