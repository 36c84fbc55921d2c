// Stage "cache-nix" (a tarball bootstrap with --cache): the relocated Nix realises the Nix built for
// this prefix that the cache's manifest names, proves it works, and makes it the active one.
import path from 'node:path';
import { nixEnvironment } from '../../prefix/environment.ts';
import { applyConfigure } from '../configure-prefix.ts';
import type { Stage } from '../stage.ts';
import { applyVerify } from '../verify-nix.ts';

export const cacheNixStage: Stage<'cache-nix'> = {
  name: 'cache-nix',
  title: 'Install the Nix built for this prefix from the cache',
  inputs: (ctx) => ({ caches: ctx.caches, keys: ctx.trustedKeys }),
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    progress('substituting from the cache');
    const env = nixEnvironment(l, { nix: s.nix, cacert: s.cacert });
    const { realiseNixFromCache } = await import('../../cache/restore.ts');
    const r = await realiseNixFromCache({
      layout: l,
      caches: ctx.caches,
      targetOptions: { netrc: l.netrcFile },
      trustedKeys: ctx.trustedKeys,
      system: ctx.host,
      nix: s.nix!,
      env,
    });
    if (!r) return { summary: 'the cache names no Nix for this system and store dir; keeping the relocated one' };
    const v = await applyVerify(l, r.nix, s.cacert, progress, { contents: true, profile: true, replaces: [s.nix!] });
    // the profile scripts, the environment and the wrappers name the new Nix's own directories
    const { journal } = await applyConfigure(l, { caches: ctx.caches, trustedKeys: ctx.trustedKeys, journal: s.sqliteJournal }, r.nix, s.cacert);
    return {
      detail: { nix: r.nix },
      patch: { nix: r.nix, nixSource: 'cache', sqliteJournal: journal },
      summary: `${path.basename(r.nix)} active (${v.version})`,
    };
  },
};
