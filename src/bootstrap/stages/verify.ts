// Stage "verify": the prefix's Nix (relocated or restored) installed in the profile and proved to work.
import { noNix } from '../../prefix/state.ts';
import type { Stage } from '../stage.ts';
import { applyVerify } from '../verify-nix.ts';

export const verifyStage: Stage<'verify'> = {
  name: 'verify',
  title: 'Install the profile and prove the new Nix works',
  // nothing of its own: the chain of earlier keys already says what is being verified, and the
  // cache-nix stage changes state.nix afterwards
  inputs: () => null,
  run: async (ctx, s, progress) => {
    if (!s.nix) throw noNix(ctx.layout.prefix, 'so there is nothing to verify');
    // a restored store was hashed path by path as it was unpacked (each NAR against its signed
    // NarHash, before the path took its name): a contents check would hash it all again a moment
    // later. A relocated store was edited in place: its registered hashes are checked against it
    const contents = s.nixSource !== 'cache';
    // the paths the register or restore stage loaded are checked; a state without the list (one an
    // older relonix wrote) has the whole store checked
    const v = await applyVerify(ctx.layout, s.nix, s.cacert, progress, { contents, profile: true, replaces: s.replaces, registered: s.registered });
    return {
      patch: { replaces: undefined, registered: undefined },
      detail: v,
      summary: `${v.version}; store verified${contents ? '' : ' (hashed as restored)'}, check build ok, ${v.libraries} libraries all from the store`,
    };
  },
};
