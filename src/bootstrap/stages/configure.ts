// Stage "configure": nix.conf, the netrc, the environment scripts and the wrappers of the prefix.
import path from 'node:path';
import { saveNetrcCredentials } from '../../net/netrc.ts';
import { journalWords } from '../../prefix/sqlite-journal.ts';
import { setupTranslator } from '../../translator/setup.ts';
import { applyConfigure } from '../configure-prefix.ts';
import { detailOf, type Stage } from '../stage.ts';
import { moved } from './relocate.ts';

export const configureStage: Stage<'configure'> = {
  name: 'configure',
  title: 'Write nix.conf and the environment',
  // with a tarball, the profile scripts name its Nix (which unpack found: that run's key is chained
  // into this one); a cache-only restore runs this before the
  // restore, because the first Nix to open the new database must already read the use-sqlite-wal
  // chosen for it (a database made in WAL mode cannot be opened without it)
  inputs: (ctx) => ({ caches: ctx.caches, keys: ctx.trustedKeys, upstreams: ctx.upstreams }),
  run: async (ctx, s) => {
    const l = ctx.layout;
    // the translator's files first: the nix.conf block names its URL and key
    const { notes } = await setupTranslator(l, ctx.upstreams);
    const input = { caches: ctx.caches, trustedKeys: ctx.trustedKeys, journal: s.sqliteJournal };
    // what the caches' URLs carried goes where only the user reads it, and Nix looks ($NIX_CONF_DIR/netrc)
    await saveNetrcCredentials(l.netrcFile, ctx.credentials);
    const u = ctx.tarball && detailOf(s, 'unpack');
    const { journal } = u
      ? await applyConfigure(l, input, moved(u.nixPath, l.storeDir), u.cacertPath && moved(u.cacertPath, l.storeDir))
      : await applyConfigure(l, input);
    const conf = `${path.relative(l.prefix, l.confFile)}, the database with the ${journalWords(journal)}`;
    return { patch: { sqliteJournal: journal }, summary: [conf, ...notes.map((n) => `warning: ${n}`)].join('\n') };
  },
};
