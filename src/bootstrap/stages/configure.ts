// Stage "configure": nix.conf, the netrc, the environment scripts and the wrappers of the prefix.
import path from 'node:path';
import { saveNetrcCredentials } from '../../net/netrc.ts';
import { setupTranslator } from '../../translator/setup.ts';
import { applyConfigure } from '../configure-prefix.ts';
import { detailOf, type Stage } from '../stage.ts';
import { moved } from './relocate.ts';

export const configureStage: Stage<'configure'> = {
  name: 'configure',
  title: 'Write nix.conf and the environment',
  // with a tarball, the profile scripts name its Nix (which unpack found: that run's key is chained
  // into this one); a cache-only restore runs this before the
  // restore, because the first Nix to open the new database must already read use-sqlite-wal =
  // false (a database made in WAL mode cannot be opened without it)
  inputs: (ctx) => ({ caches: ctx.caches, keys: ctx.trustedKeys, upstreams: ctx.upstreams }),
  run: async (ctx, s) => {
    const l = ctx.layout;
    // the translator's files first: the nix.conf block names its URL and key
    const { notes } = await setupTranslator(l, ctx.upstreams);
    const input = { caches: ctx.caches, trustedKeys: ctx.trustedKeys };
    // what the caches' URLs carried goes where only the user reads it, and Nix looks ($NIX_CONF_DIR/netrc)
    await saveNetrcCredentials(l.netrcFile, ctx.credentials);
    if (ctx.tarball) {
      const u = detailOf(s, 'unpack');
      await applyConfigure(l, input, moved(u.nixPath, l.storeDir), u.cacertPath && moved(u.cacertPath, l.storeDir));
    } else {
      await applyConfigure(l, input);
    }
    return { summary: [path.relative(l.prefix, l.confFile), ...notes.map((n) => `warning: ${n}`)].join('\n') };
  },
};
