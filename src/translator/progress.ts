// How far the translations are, told to the commands waiting on them. Nix asks for the narinfo of
// every path of a closure before it fetches any, and prints nothing meanwhile: over a real network
// that wait is the whole download and more, and a user sees a command that hangs. A burst of work
// (from a translation starting with none running to the last of them ending) that has lasted a few
// seconds is said, again every few seconds, and at its end how it went; a short one is never said.
// While it is said, how far it is is also kept where relonix status reads it.
import { size } from '../util/format.ts';

export interface ProgressOptions {
  /** how long a burst runs before its first line */
  firstMs: number;
  /** how often a line follows */
  everyMs: number;
}

export const PROGRESS: ProgressOptions = { firstMs: 3000, everyMs: 10_000 };

/** How far a burst that is being said is, as relonix status shows it. */
export interface ProgressState {
  /** when it started (ISO 8601) */
  since: string;
  /** translations asked for, ended, and of those the ones that gave no path */
  asked: number;
  ended: number;
  failed: number;
  /** upstream's NAR bytes of those asked for, and of those ended */
  bytes: number;
  endedBytes: number;
}

export interface ProgressSinks {
  /** a line for the commands; what it returns for the line that ends a burst, the end's caller waits for */
  say: (text: string) => unknown;
  /** how far the burst is, each time that changes while it is said; undefined once it is over (waited for, as the last line is) */
  keep?: (state: ProgressState | undefined) => unknown;
}

interface Burst extends Omit<ProgressState, 'since'> {
  start: number;
  /** of the bytes that ended, those of translations that gave a path */
  okBytes: number;
  said: boolean;
  timer?: NodeJS.Timeout;
}

export class Progress {
  private burst: Burst | undefined;

  constructor(
    private readonly sinks: ProgressSinks,
    private readonly o: ProgressOptions = PROGRESS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A translation of `bytes` (upstream's NAR size) is due; call what it returns when it has ended
   * (the burst's last line is said before the narinfo goes out, so it reaches the command).
   */
  begin(bytes: number): (ok: boolean) => unknown {
    this.burst ??= { start: this.now(), asked: 0, ended: 0, failed: 0, bytes: 0, endedBytes: 0, okBytes: 0, said: false };
    const b = this.burst;
    b.asked++;
    b.bytes += bytes;
    if (!b.timer) this.wait(b, this.o.firstMs);
    let over = false;
    return (ok) => {
      if (over) return undefined;
      over = true;
      b.ended++;
      b.endedBytes += bytes;
      if (ok) b.okBytes += bytes;
      else b.failed++;
      if (b.ended < b.asked) {
        if (b.said) this.sinks.keep?.(state(b));
        return undefined;
      }
      clearTimeout(b.timer);
      this.burst = undefined;
      if (!b.said) return undefined;
      return Promise.all([this.sinks.keep?.(undefined), this.sinks.say(endLine(b, this.now()))]);
    };
  }

  private wait(b: Burst, ms: number): void {
    b.timer = setTimeout(() => {
      if (this.burst !== b) return;
      b.said = true;
      this.sinks.keep?.(state(b));
      this.sinks.say(progressLine(b, this.now()));
      this.wait(b, this.o.everyMs);
    }, ms);
    // a translator with nothing else to do leaves when it is idle, whatever is due to be said
    b.timer.unref();
  }
}

/** A ProgressState's fields alone, from anything that has them (a burst, the file status reads). */
export function progressState(s: ProgressState): ProgressState {
  const { since, asked, ended, failed, bytes, endedBytes } = s;
  return { since, asked, ended, failed, bytes, endedBytes };
}

function state(b: Burst): ProgressState {
  return progressState({ ...b, since: new Date(b.start).toISOString() });
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

function paths(n: number): string {
  return `${n} path${n === 1 ? '' : 's'}`;
}

function progressLine(b: Burst, now: number): string {
  return `relonix: translating upstream's binaries for Nix: ${b.ended} of ${paths(b.asked)} done (${size(b.endedBytes)} of ${size(b.bytes)}), ${seconds(now - b.start)} so far\n`;
}

function endLine(b: Burst, now: number): string {
  // each one that failed was said as it failed, with why
  const failed = b.failed ? `; ${b.failed} could not be (said above), Nix builds ${b.failed === 1 ? 'it' : 'them'}` : '';
  return `relonix: translated ${paths(b.ended - b.failed)} (${size(b.okBytes)}) in ${seconds(now - b.start)}${failed}\n`;
}
