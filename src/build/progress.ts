// How a durable build shows itself. Nix's own log goes to stderr as Nix wrote it; on a terminal one
// live line under it counts the derivations built, running and pushed, and the finished ones not
// yet pushed (what a restart would still lose); without a terminal, plain lines as things happen;
// with --json, one event per line on stdout.

import { emit } from '../util/emit.ts';
import type { UiMode } from '../util/ui-mode.ts';

export interface Counts {
  /** derivations nix-build said it would build (unknown until it says) */
  total?: number;
  built: number;
  running: number;
  failed: number;
  pushed: number;
  /** finished, queued, not in the cache yet */
  unpushed: number;
}

/** Pure: the one line of counts. */
export function statusLine(c: Counts): string {
  const parts = [`built ${c.built}${c.total === undefined ? '' : `/${c.total}`}`, `running ${c.running}`, `pushed ${c.pushed}`];
  if (c.failed) parts.push(`failed ${c.failed}`);
  parts.push(`${c.unpushed} finished but not yet pushed`);
  return parts.join(' · ');
}

const CLEAR = '\r\x1b[2K';

export class BuildDisplay {
  private shown = '';
  private last = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly mode: UiMode,
    private readonly err: NodeJS.WriteStream = process.stderr,
  ) {}

  /** A line of Nix's log, above the live line. */
  nixLine(line: string): void {
    if (this.mode === 'tty' && this.shown) this.err.write(`${CLEAR}${line}\n${this.shown}`);
    else this.err.write(`${line}\n`);
  }

  /** What relonix itself has to say, as a line of its own (or an event). */
  say(text: string, event?: Record<string, unknown>): void {
    if (this.mode === 'json') emit({ event: 'info', text, ...event });
    else this.nixLine(`relonix: ${text}`);
  }

  /**
   * Something happened that changes the counts: an event with them for scripts, a line saying what
   * in a log, the live line redrawn on a terminal.
   */
  step(text: string, c: Counts, event: Record<string, unknown>): void {
    if (this.mode === 'json') emit({ ...event, ...c });
    else if (this.mode === 'plain') this.err.write(`relonix: ${text} (${statusLine(c)})\n`);
    else this.update(c);
  }

  /** Like step, for what Nix's own log already says: no line of relonix's in a log. */
  count(c: Counts, event: Record<string, unknown>): void {
    if (this.mode === 'json') emit({ ...event, ...c });
    else this.update(c);
  }

  /** Redraws the live line, at most ten times a second (at once, when `now`). */
  update(c: Counts, now = false): void {
    if (this.mode !== 'tty') return;
    const line = statusLine(c);
    clearTimeout(this.timer);
    const draw = () => {
      this.last = Date.now();
      this.shown = `relonix: ${line}`;
      this.err.write(`${CLEAR}${this.shown}`);
    };
    if (now || Date.now() - this.last >= 100) draw();
    else this.timer = setTimeout(draw, 100).unref();
  }

  /** Leaves the terminal on a fresh line. */
  close(): void {
    clearTimeout(this.timer);
    if (this.mode === 'tty' && this.shown) this.err.write('\n');
    this.shown = '';
  }
}
