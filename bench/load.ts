// The machine's load around a bench. A ratio is only worth printing when both of its sides ran on
// the same machine: when the load average moved by more than a core while the bench ran, other work
// came or went in between, and the bench withholds its ratios (run it again instead).
import os from 'node:os';

/** How far the one-minute load average may move during a run before ratios are withheld. */
const MAX_MOVE = 1;

export interface LoadWatch {
  /** the one-minute load average when the bench started */
  before: number;
  /**
   * Prints the load after the run; true when it stayed within a core of the start. Ratios printed
   * through `ratio` before this is called are held back and printed (or withheld) here.
   */
  settle(): boolean;
  /** A line with a ratio in it: printed by settle() when the load held, replaced by a notice if not. */
  ratio(line: string): void;
}

function load(): number {
  return os.loadavg()[0]!;
}

let watch: LoadWatch | undefined;

/** The watch of this bench process (one, however many of its modules ask), started on first use. */
export function watchLoad(): LoadWatch {
  watch ??= startWatch();
  return watch;
}

function startWatch(): LoadWatch {
  const before = load();
  const held: string[] = [];
  console.log(`load before: ${before.toFixed(2)} (one-minute average, ${os.availableParallelism()} CPUs)`);
  return {
    before,
    ratio: (line) => held.push(line),
    settle() {
      const after = load();
      const steady = Math.abs(after - before) <= MAX_MOVE;
      console.log(`load after:  ${after.toFixed(2)}${steady ? '' : `: it moved by ${Math.abs(after - before).toFixed(2)}, more than ${MAX_MOVE} core`}`);
      if (steady) for (const l of held) console.log(l);
      else {
        console.log(
          `ratios withheld (${held.length}): the load changed during the run, so the two sides of a ratio ran on different machines; run the bench again`,
        );
        process.exitCode = 1;
      }
      return steady;
    },
  };
}
