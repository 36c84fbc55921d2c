// The run dir a bundle unpacks into: exactly as long as the store dir its closure was built for, so
// every store reference was rewritten in place when the bundle was made and nothing moves on the host.
import { createHash } from 'node:crypto';
import { toNixBase32 } from '../store/nixbase32.ts';
import { RelonixError } from '../util/errors.ts';

/** Where run dirs go by default: every Linux host has a /tmp its users may write to. */
export const RUN_ROOT = '/tmp/';

/** A file name may be 255 bytes; a run dir is one name under RUN_ROOT. */
const MAX_NAME = 255;

/**
 * The default run dir of a closure: RUN_ROOT and name characters drawn from `seed` (a hash of what the
 * bundle holds), as many as the store dir's length leaves: `/tmp/<5 chars>` for a 10-byte store dir.
 * It is never the store dir itself, so a bundle made on this host does not collide with its own store.
 */
/** A store dir too short or too long for a run dir of its length under RUN_ROOT. */
export function noRunDirOfLength(storeDir: string): RelonixError {
  return new RelonixError(
    `the store dir ${storeDir} is ${Buffer.byteLength(storeDir)} bytes: a run dir of that length cannot be made under ${RUN_ROOT} (it needs ${RUN_ROOT.length + 1} to ${RUN_ROOT.length + MAX_NAME} bytes)`,
    {
      kind: 'usage',
      hint: 'bundle from a prefix whose store dir is as long as /nix/store (10 bytes: relonix bootstrap --store-dir /tmp/store), or its default one',
    },
  );
}

export function defaultRunDir(storeDir: string, seed: string): string {
  const length = Buffer.byteLength(storeDir);
  const room = length - RUN_ROOT.length;
  if (room < 1 || room > MAX_NAME) {
    throw noRunDirOfLength(storeDir);
  }
  for (let round = 0; ; round++) {
    let name = '';
    for (let block = 0; name.length < room; block++) {
      name += toNixBase32(createHash('sha256').update(`relonix-bundle-run-dir\0${round}\0${block}\0${seed}`).digest());
    }
    const dir = RUN_ROOT + name.slice(0, room);
    if (dir !== storeDir) return dir;
  }
}
