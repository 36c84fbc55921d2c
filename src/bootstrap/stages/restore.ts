// Stage "restore" (a cache-only bootstrap): the Nix the cache's manifest names, with its closure,
// signature- and hash-checked and registered at once (the verify stage installs it into the default
// profile).
import path from 'node:path';
import { chooseJournal } from '../../prefix/sqlite-journal.ts';
import { progressText } from '../../util/progress.ts';
import { writeConfiguration } from '../configure-prefix.ts';
import { replacedBy, type Stage } from '../stage.ts';

export const restoreStage: Stage<'restore'> = {
  name: 'restore',
  title: 'Restore Nix from the binary cache',
  inputs: (ctx) => ({ store: ctx.layout.storeDir }),
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    // loaded on use: tarball bootstraps never pay for the cache client
    const { restoreFromCache } = await import('../../cache/restore.ts');
    // chosen before the registration makes the database, which then has it: read while it is
    // being made, its header could still show the journal SQLite starts with
    const journal = await chooseJournal(l, s.sqliteJournal);
    const input = { caches: ctx.caches, trustedKeys: ctx.trustedKeys, journal };
    const r = await restoreFromCache({
      layout: l,
      caches: ctx.caches,
      trustedKeys: ctx.trustedKeys,
      system: ctx.host,
      targetOptions: { netrc: l.netrcFile },
      onProgress: (p) => progress(progressText(p)),
      // the profile scripts and the wrappers name the restored Nix too (its bin/ after the
      // profile's), written while the database learns of the paths
      besideRegistration: async (nix, cacert) => void (await writeConfiguration(l, input, journal, nix, cacert)),
    });
    return {
      detail: { nix: r.nix, cacert: r.cacert, paths: r.paths.length },
      patch: { nix: r.nix, cacert: r.cacert, nixSource: 'cache', replaces: replacedBy(s, [r.nix, r.cacert]), sqliteJournal: journal, registered: r.paths },
      summary: `${path.basename(r.nix)} and ${r.paths.length} paths`,
    };
  },
};
