// What is wrong with a place a bootstrap writes (the prefix, the store dir) or the room on its
// filesystem, worded once: bootstrap's preflight refuses with these, relonix doctor reports them.
import type { Problem } from '../prefix/guard.ts';
import { mib } from '../util/format.ts';

export type { Problem };

/** The prefix or the store dir, and the option that names another. */
export interface Place {
  what: 'the prefix' | 'the store dir';
  flag: '--prefix' | '--store-dir';
}

export const PREFIX: Place = { what: 'the prefix', flag: '--prefix' };
export const STORE_DIR: Place = { what: 'the store dir', flag: '--store-dir' };

const example = (p: Place) => (p === PREFIX ? '--prefix $HOME/nix or --prefix /tmp/$USER-nix' : '--store-dir /tmp/store');

export function symlinked(p: Place, dir: string, real: string): Problem {
  return {
    message: `${p.what} ${dir} goes through a symlink (it is really ${real}); Nix refuses a store dir with symlinks in it`,
    hint: `pass ${p.flag} ${real}`,
  };
}

/** `why`: the error, or the read-only mount. */
export function unwritable(p: Place, dir: string, why: string): Problem {
  const hint = p === PREFIX ? `choose a prefix you own, e.g. ${example(p)}` : `choose a store dir you can create, e.g. ${example(p)}`;
  return { message: `cannot write ${p === PREFIX ? 'under' : 'in'} ${p.what} ${dir}: ${why}`, hint };
}

/** `why`: the error, or the noexec mount. */
export function unrunnable(p: Place, dir: string, why: string): Problem {
  return {
    message: `programs in ${p.what} ${dir} cannot be executed (${why})`,
    hint: `the filesystem is mounted noexec or forbids running programs; choose ${p.what === 'the prefix' ? 'a prefix' : 'a store dir'} on another filesystem (see \`mount\`), e.g. ${example(p)}`,
  };
}

export function tooLittleSpace(dir: string, fsType: string, freeBytes: number, needBytes: number): Problem {
  return {
    message: `${dir} (${fsType}) has ${mib(freeBytes)} free; Nix needs about ${mib(needBytes)} (tarball, unpacked closure and headroom)`,
    hint: 'free some space or choose a prefix on a bigger filesystem (--prefix DIR)',
  };
}

export function tooFewInodes(dir: string, fsType: string, freeInodes: number, needInodes: number): Problem {
  return {
    message: `${dir} (${fsType}) has ${freeInodes} inodes free; a bootstrap creates up to ${needInodes} files and directories`,
    hint: 'remove files on that filesystem or choose a prefix on another one (--prefix DIR); `df -i` shows inodes',
  };
}
