// Progress on long work, one shape for every reporter: a download or an unpack counts bytes
// (`received` of `total`), a restore counts paths (`done` of `total`) and says what it is doing.
import { mib } from './format.ts';

export interface Progress {
  /** what is being done now (a restore's step) */
  message?: string;
  /** bytes so far */
  received?: number;
  /** items so far */
  done?: number;
  /** bytes or items in all, when known */
  total?: number;
  /** entries written so far (an unpack) */
  entries?: number;
}

/** Bytes moved: a download's, an unpack's (with the entries written). */
export type BytesProgress = Progress & { received: number };

/** A step of a restore, with the paths done of all when it counts them. */
export type StepProgress = Progress & { message: string };

/** A progress report as one line: the step with its counts, a bar of bytes, or the bytes so far. */
export function progressText(p: Progress | string): string {
  if (typeof p === 'string') return p;
  if (p.message !== undefined) return p.total ? `${p.message} (${p.done ?? 0}/${p.total})` : p.message;
  const done = p.received ?? p.done ?? 0;
  const total = p.total ?? 0;
  if (total > 0) {
    const frac = Math.min(1, done / total);
    const width = 24;
    const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
    return `${bar} ${(frac * 100).toFixed(0)}% ${mib(done)} / ${mib(total)}`;
  }
  return done > 0 ? mib(done) : '';
}
