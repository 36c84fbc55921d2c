// How a durable build ends, decided here rather than by the command: 128+N after a signal, with what
// the cache holds; nix-build's own status; or, when everything built but pushes are still owed, a
// network error, since the build's result is not yet where it was asked to go.
import { RelonixError } from '../util/errors.ts';
import type { DurableBuildResult } from './index.ts';

export type BuildOutcome =
  /** stopped by a signal: the command says what was kept and exits 128+N */
  | { signal: NodeJS.Signals; kept: string }
  /** nix-build's status; `note` is said in passing (pushes owed behind a failed build) */
  | { exitCode: number; note?: string }
  | { error: RelonixError };

/** Pure: the outcome of `r` for the cache `cache` (as it may be shown: credentials masked). */
export function buildOutcome(r: Omit<DurableBuildResult, 'display' | 'stdout'>, cache: string): BuildOutcome {
  const n = r.pending.length;
  if (r.signal) {
    // stopped by a signal: 128+N whatever nix-build said, with what the cache holds now
    const queued = n
      ? `${n} finished derivation${n === 1 ? '' : 's'} not in ${cache} yet stay${n === 1 ? 's' : ''} queued, and the next relonix build pushes them first`
      : `every derivation that had finished is in ${cache}`;
    return { signal: r.signal, kept: `${queued}; the builds that were running are lost; the same command goes on from there` };
  }
  if (n === 0) {
    // every derivation built here is in the cache, but the outputs' closures (what was substituted
    // or translated) are not all: the result is not yet where it was asked to go either
    if (r.code === 0 && r.pushError) return { error: closureNotPushed(cache, r.pushError) };
    return { exitCode: r.code };
  }
  const why = r.abandoned ? 'the grace period ran out' : (r.pushError?.message ?? 'pushing failed');
  // the build's own failure is the news; the queue is said in passing
  if (r.code !== 0) return { exitCode: r.code, note: unpushedText(n, cache, why) };
  return { error: buildNotPushed(n, cache, why, r.pushError) };
}

function unpushedText(n: number, cache: string, why: string): string {
  return `${n} built derivation${n === 1 ? ' is' : 's are'} not in ${cache} yet (${why}); they stay queued, and the next relonix build pushes them first`;
}

/** Everything built, and `n` derivations are not in the cache yet: the build is not where it was asked to go. */
export function buildNotPushed(n: number, cache: string, why: string, cause?: unknown): RelonixError {
  return new RelonixError(unpushedText(n, cache, why), {
    kind: 'network',
    hint: 'check that the cache is reachable and run the same command again; relonix status lists the queue',
    cause,
  });
}

/** The build and its derivations' pushes succeeded; the rest of the outputs' closures did not reach the cache. */
export function closureNotPushed(cache: string, cause: RelonixError): RelonixError {
  return new RelonixError(
    `the outputs' closures are not all in ${cache} (${cause.message}): what was substituted or translated rather than built here is missing there`,
    {
      kind: 'network',
      hint: 'check that the cache is reachable and run the same command again: it builds nothing new and pushes what is missing',
      cause,
    },
  );
}
