// Retrying: which failures deserve another attempt, how long to wait before it, and the named budgets
// (POLICY) every caller picks from. Downloads, publish, restore, cache gc and the build's uploader all
// wait by `backoffMs`; once the attempts are spent, the layer that called `retry` turns the last
// failure into a RelonixError of kind 'network' (see `spent`).
import { errorMessage, RelonixError } from './errors.ts';

/** A failure a later attempt can fix: the server or the connection, not the request. */
export class TransientError extends Error {}

/**
 * Timeouts, "too early", rate limits and server errors: the server may answer otherwise later. Not
 * 501 (the server does not implement the method) nor 505 (nor the HTTP version): those stay.
 */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** Connection failures worth another attempt, whichever layer reports them. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

export function isTransient(e: unknown): boolean {
  if (e instanceof TransientError) return true;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

export interface RetryOptions {
  /** attempts after the first (default 6) */
  retries?: number;
  /** the first wait; each further one doubles, up to maxRetryDelayMs (default 500 ms) */
  minRetryDelayMs?: number;
  /** default 15 s */
  maxRetryDelayMs?: number;
  signal?: AbortSignal;
}

/** The budgets, by what is being tried: each caller names one instead of writing numbers of its own. */
export const POLICY = {
  /** a whole file: a download or an upload (the defaults) */
  transfer: { retries: 6, minRetryDelayMs: 500, maxRetryDelayMs: 15_000 },
  /** one small object: a narinfo, a checksum, whether a cache has a path */
  lookup: { retries: 4 },
  /** a cache's nix-cache-info or manifest, read before anything else is asked of it */
  probe: { retries: 3 },
  /** the manifest a build reads on its way to nix-build, which goes on without it */
  glance: { retries: 2, minRetryDelayMs: 200 },
  /** one NAR a restore fetches and unpacks; a cut stream starts that path over */
  nar: { retries: 6, minRetryDelayMs: 300 },
  /** a run of NARs through one decompressor: its paths go back to the queue */
  narRun: { retries: 4, minRetryDelayMs: 300 },
  /** each push of a build's finished outputs, while the build goes on */
  buildPush: { retries: 5, minRetryDelayMs: 300 },
  /** a failed batch of a build's pushes, tried again later for as long as the build runs */
  buildBatch: { minRetryDelayMs: 1000, maxRetryDelayMs: 30_000 },
} as const satisfies Record<string, RetryOptions>;

/**
 * The wait before retry number `attempt` (0 for the first): exponential, with half of it random so
 * that many clients cut off at once do not come back at once.
 */
export function backoffMs(attempt: number, o: RetryOptions = {}, random = Math.random()): number {
  const t = POLICY.transfer;
  const base = Math.min(o.maxRetryDelayMs ?? t.maxRetryDelayMs, (o.minRetryDelayMs ?? t.minRetryDelayMs) * 2 ** attempt);
  return Math.round(base / 2 + (base / 2) * random);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      signal?.removeEventListener('abort', stop);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/** Runs fn until it succeeds, retrying only transient failures; `attempt` counts from 0. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const retries = o.retries ?? POLICY.transfer.retries;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!isTransient(e) || attempt >= retries || o.signal?.aborted) throw e;
      await sleep(backoffMs(attempt, o), o.signal);
    }
  }
}

/**
 * What a layer's caller sees once retries are spent: a transient failure becomes a network error
 * with the fix; a RelonixError or a failure of another kind passes through as it is.
 */
export function spent(e: unknown, what: string, hint: string): unknown {
  if (e instanceof RelonixError || !isTransient(e)) return e;
  return stillUnreachable(what, e, hint);
}

/** A server or cache that kept failing (refused, timed out, 5xx) after every retry. */
export function stillUnreachable(what: string, cause: unknown, hint: string): RelonixError {
  return new RelonixError(`${what}: ${errorMessage(cause)}`, { kind: 'network', hint, cause });
}
