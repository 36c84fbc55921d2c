import { mib } from './format.ts';
import { redactUrl } from './redact.ts';

/**
 * What went wrong, in the terms a script acts on. The CLI (src/cli.ts) alone turns a kind into an
 * exit code; every layer only says which kind it is.
 */
export type ErrorKind =
  /** the command line or an input file is wrong: fix it and run again */
  | 'usage'
  /** a checksum, hash or signature did not match: nothing was trusted */
  | 'integrity'
  /** another relonix holds the prefix */
  | 'busy'
  /** the host or prefix cannot hold a Nix (space, noexec, machine) */
  | 'preflight'
  /** a server or cache stayed unreachable or kept failing after retries */
  | 'network'
  /** relonix run: the command is not in the prefix's PATH (a shell's 127) */
  | 'missing'
  /** relonix run: the command is there but cannot be run (a shell's 126) */
  | 'unrunnable'
  /** anything else */
  | 'failure';

/** An error the user can act on: what went wrong, and the fix. Printed without a stack trace. */
export class RelonixError extends Error {
  readonly kind: ErrorKind;
  readonly hint?: string;
  constructor(message: string, opts: { kind?: ErrorKind; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RelonixError';
    this.kind = opts.kind ?? 'failure';
    this.hint = opts.hint;
  }
}

export function isKind(e: unknown, kind: ErrorKind): e is RelonixError {
  return e instanceof RelonixError && e.kind === kind;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Each error of a cause chain, outermost first (what RELONIX_DEBUG=1 prints). */
export function causeChain(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let c: unknown = e; c !== undefined && out.length < 16; c = c instanceof Error ? c.cause : undefined) out.push(c);
  return out;
}

/** The errno code of a system error (ENOSPC, EACCES …), if it is one. */
export function errnoCode(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** What a system error means, in words; anything else, its own message. */
const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'it does not exist',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted',
  EROFS: 'the filesystem is mounted read-only',
  EISDIR: 'it is a directory',
  ENAMETOOLONG: 'a name in the path is longer than the filesystem takes',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  EIO: 'an input/output error (the disk or the network filesystem failed)',
};

export function errnoWords(e: unknown): string {
  return ERRNO_WORDS[errnoCode(e) ?? ''] ?? errorMessage(e);
}

/** A full disk (or a used-up quota): never damage, never the network. */
export function isNoSpace(e: unknown): boolean {
  for (const c of causeChain(e)) if (errnoCode(c) === 'ENOSPC' || errnoCode(c) === 'EDQUOT') return true;
  return false;
}

/** The one way a full disk is said, wherever it is noticed: where, what is free, what was needed. */
export function noSpace(where: string, freeBytes: number, needBytes?: number, cause?: unknown): RelonixError {
  const need = needBytes === undefined ? '' : `, ${mib(needBytes)} needed`;
  return new RelonixError(`no space left on ${where}: ${mib(freeBytes)} free${need}`, {
    kind: 'preflight',
    hint: 'free some space there (or choose a prefix on a bigger filesystem, --prefix DIR), then run the same command again: it continues where it stopped',
    cause,
  });
}

/** What relonix was doing when the system said no, from the failed call's name. */
const SYSCALL_VERBS: Record<string, string> = {
  mkdir: 'create',
  open: 'open',
  write: 'write',
  rename: 'rename',
  unlink: 'remove',
  rmdir: 'remove',
  rm: 'remove',
  scandir: 'read the directory',
  stat: 'look at',
  lstat: 'look at',
  copyfile: 'copy',
  link: 'link',
  symlink: 'make the symlink',
  chmod: 'change the mode of',
  read: 'read',
};

/** The system errors that mean the prefix (or a path given) cannot be used as it is. */
const PATH_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'ELOOP', 'ENOENT', 'ENOSPC', 'EDQUOT']);

/**
 * A file system call's refusal (EACCES, ENOTDIR, EROFS …) as a sentence with the fix, of kind
 * preflight; undefined for anything else. The last word on errors no layer worded itself.
 */
export function fromSystemError(e: unknown): RelonixError | undefined {
  const err = e as NodeJS.ErrnoException | undefined;
  const code = errnoCode(e);
  if (!err || !code || !PATH_CODES.has(code)) return undefined;
  const verb = SYSCALL_VERBS[err.syscall ?? ''] ?? 'use';
  // a write names no path; a full disk is worth saying all the same
  const what = typeof err.path === 'string' ? `${verb} ${err.path}` : isNoSpace(e) ? verb : undefined;
  if (!what) return undefined;
  return new RelonixError(`cannot ${what}: ${errnoWords(e)}`, {
    kind: 'preflight',
    hint:
      code === 'ENOSPC' || code === 'EDQUOT'
        ? 'free some space there, then run the same command again'
        : 'check that the path exists, is what it should be, and that this user may write there; or choose another prefix (--prefix DIR)',
    cause: e,
  });
}

/**
 * A cache to take store paths from, given without the public key its narinfos are signed with
 * (cache.nixos.org's own is known): nothing from it could be trusted.
 */
export function cacheNeedsKey(option: string, url: string, keyOption: string): RelonixError {
  return new RelonixError(`${option} ${redactUrl(url)} needs ${keyOption}, the key its narinfos are signed with`, {
    kind: 'usage',
    hint: `add ${keyOption} NAME:BASE64 (the cache's public key, as its operator publishes it)`,
  });
}
