// The one retry policy: which failures deserve another attempt, and how long to wait before it.
// Downloads, publish, restore and cache gc all go through `retry`; once the attempts are spent, the
// layer that called it turns the last failure into a RelonixError of kind 'network' (see `spent`).
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

/**
 * The wait before retry number `attempt` (0 for the first): exponential, with half of it random so
 * that many clients cut off at once do not come back at once.
 */
export function backoffMs(attempt: number, o: RetryOptions = {}, random = Math.random()): number {
  const base = Math.min(o.maxRetryDelayMs ?? 15_000, (o.minRetryDelayMs ?? 500) * 2 ** attempt);
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
  const retries = o.retries ?? 6;
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
  return new RelonixError(`${what}: ${errorMessage(e)}`, { kind: 'network', hint, cause: e });
}
