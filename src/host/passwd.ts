// Whether the running uid has a passwd entry. Rootless containers often run an arbitrary uid with
// none: Nix then needs USER from relonix, and OpenSSH stops ("No user exists for uid N").
import os from 'node:os';
import { RelonixError } from '../util/errors.ts';

/** The user name of this uid, or undefined when it has no passwd entry. */
export function passwdName(): string | undefined {
  try {
    return os.userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

/** What the fix for a missing entry is, wherever it is noticed. */
export function passwdHint(uid: number): string {
  return `give the uid an entry: in the image (useradd -u ${uid} builder), with nss_wrapper (LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_PASSWD=FILE NSS_WRAPPER_GROUP=FILE), or on a PaaS by the platform's "arbitrary uid" recipe (an /etc/passwd writable by group 0)`;
}

/** The refusal of anything that runs OpenSSH as a uid without an entry. */
export function noPasswdEntry(uid: number = process.getuid?.() ?? -1): RelonixError {
  return new RelonixError(
    `this uid (${uid}) has no passwd entry, and OpenSSH refuses to run without one ("No user exists for uid ${uid}"), so Nix cannot reach a remote builder`,
    { kind: 'preflight', hint: passwdHint(uid) },
  );
}
