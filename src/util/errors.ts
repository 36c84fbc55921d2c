import { mib } from './format.ts';

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
function errnoCode(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
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
