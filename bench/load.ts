// The machine's load around a bench. A ratio is only worth printing when both of its sides ran on
// the same machine: when the work of other processes changed by more than a core while the bench
// ran, the bench withholds its ratios (run it again instead). Other processes' work is the CPU the
// machine spent (/proc/stat) less what this bench and the programs it ran spent (/proc/self/stat),
// so a bench that keeps both cores busy itself is not taken for other work, as the load average
// (which counts the bench too) would take it. A server the bench starts detached is counted as its
// own when the bench says what it ran (detached()).
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** How far other processes' work, in cores, may move during a run before ratios are withheld. */
const MAX_MOVE = 1;
/** Clock ticks a second, as /proc reports CPU time (USER_HZ, 100 on every Linux port). */
export const HZ = 100;
/** How long other processes' work is sampled before the bench starts. */
const SAMPLE_MS = 1000;

export interface LoadWatch {
  /** the one-minute load average when the bench started */
  before: number;
  /**
   * Prints the load after the run; true when other work stayed within a core of the start. Ratios
   * printed through `ratio` before this is called are held back and printed (or withheld) here.
   */
  settle(): boolean;
  /** A line with a ratio in it: printed by settle() when the load held, replaced by a notice if not. */
  ratio(line: string): void;
  /**
   * CPU ticks that a process the bench started but does not wait for (a detached server) ran since
   * the last call for it: the bench's own work, not other processes'. Counted before it exits.
   */
  detached(ticks: number): void;
}

interface Sample {
  at: number;
  /** ticks the machine's CPUs were busy */
  busy: number;
  /** ticks this process and the children it waited for ran */
  own: number;
}

/** The fields of /proc/PID/stat after the command's name, which may hold spaces and parentheses, as numbers; none once it is gone. */
export function procStatFields(pid: string): number[] {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
  } catch {
    return [];
  }
}

/** CPU ticks of this process, and of the children it has waited for (and theirs), from /proc/self/stat. */
export function ownTicks(): { self: number; children: number } {
  // utime stime cutime cstime are fields 14 to 17, 12 to 15 after the name
  const f = procStatFields('self');
  return { self: (f[11] ?? 0) + (f[12] ?? 0), children: (f[13] ?? 0) + (f[14] ?? 0) };
}

/** ticks of detached processes of this bench, counted so far */
let detachedTicks = 0;

function sample(): Sample {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: idle and iowait are not work
  const busy = cpu.reduce((a, b) => a + b, 0) - (cpu[3] ?? 0) - (cpu[4] ?? 0);
  const t = ownTicks();
  return { at: performance.now(), busy, own: t.self + t.children + detachedTicks };
}

/** Other processes' work between two samples, in cores. */
function othersBetween(a: Sample, b: Sample): number {
  const seconds = (b.at - a.at) / 1000;
  return seconds > 0 ? Math.max(0, (b.busy - a.busy - (b.own - a.own)) / HZ / seconds) : 0;
}

let watch: LoadWatch | undefined;

/** The watch of this bench process (one, however many of its modules ask), started on first use. */
export function watchLoad(): LoadWatch {
  watch ??= startWatch();
  return watch;
}

function startWatch(): LoadWatch {
  const before = os.loadavg()[0]!;
  const first = sample();
  // a second of the machine with this bench idle: what other processes do before it starts
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, SAMPLE_MS);
  const start = sample();
  const othersBefore = othersBetween(first, start);
  const held: string[] = [];
  console.log(
    `load before: ${before.toFixed(2)} (one-minute average, ${os.availableParallelism()} CPUs); other processes' work ${othersBefore.toFixed(2)} cores`,
  );
  return {
    before,
    ratio: (line) => held.push(line),
    detached: (ticks) => {
      detachedTicks += ticks;
    },
    settle() {
      const others = othersBetween(start, sample());
      const moved = Math.abs(others - othersBefore);
      const steady = moved <= MAX_MOVE;
      const after = os.loadavg()[0]!;
      console.log(
        `load after:  ${after.toFixed(2)}; other processes' work during the run ${others.toFixed(2)} cores${steady ? '' : `: it moved by ${moved.toFixed(2)}, more than ${MAX_MOVE} core`}`,
      );
      if (steady) for (const l of held) console.log(l);
      else {
        console.log(
          `ratios withheld (${held.length}): other work came or went during the run, so the two sides of a ratio ran on different machines; run the bench again`,
        );
        process.exitCode = 1;
      }
      return steady;
    },
  };
}
