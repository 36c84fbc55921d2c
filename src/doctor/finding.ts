// One line of relonix doctor's report: what was probed, the verdict, what it found and the fix.
import os from 'node:os';
import { RelonixError } from '../util/errors.ts';

/** ok: nothing to do; warning: works, with a cost or a limit worth knowing; problem: relonix or Nix will fail. */
type Verdict = 'ok' | 'warning' | 'problem';

export interface Finding {
  /** stable name for scripts (`seccomp`, `prefix-dir`, …) */
  id: string;
  verdict: Verdict;
  /** what was found, in a sentence */
  summary: string;
  /** what to do about it; every warning and problem has one */
  fix?: string;
  /** the facts behind the verdict, for --json */
  facts?: Record<string, unknown>;
}

export const ok = (id: string, summary: string, facts?: Record<string, unknown>): Finding => ({ id, verdict: 'ok', summary, facts });

export const warning = (id: string, summary: string, fix: string, facts?: Record<string, unknown>): Finding => ({
  id,
  verdict: 'warning',
  summary,
  fix,
  facts,
});

export const problem = (id: string, summary: string, fix: string, facts?: Record<string, unknown>): Finding => ({
  id,
  verdict: 'problem',
  summary,
  fix,
  facts,
});

/** `EPERM` for 1: the name of an errno, as strerror's callers know it. */
export function errnoName(n: number): string {
  const hit = Object.entries(os.constants.errno).find(([, v]) => v === n);
  return hit ? hit[0] : `errno ${n}`;
}

/** The refusal relonix doctor ends with when any finding is a problem (exit 5, as preflight's). */
export function doctorFoundProblems(problems: Finding[]): RelonixError {
  const n = problems.length;
  return new RelonixError(`relonix doctor found ${n} problem${n === 1 ? '' : 's'}: ${problems.map((p) => p.id).join(', ')}`, {
    kind: 'preflight',
    hint: 'each problem above says what to do; run relonix doctor again once they are fixed',
  });
}
