// What Ctrl-C (or SIGTERM, SIGHUP) does to relonix: the command ends at once with 128+N, as a shell
// reports a command killed by signal N, saying in one line (and a --json event) what was kept. A
// layer that stops more gently holds the signals meanwhile: relonix run passes them on to its
// command, relonix build stops nix-build and pushes what has finished, then reports the same way.
import { constants } from 'node:os';
import { emit } from './emit.ts';

const STOPS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

let kept = 'what had finished is kept; the same command, run again, continues from there';
let held = 0;
let abandoned = false;

/**
 * Work still in flight (pushes past build's grace period) is left to the next run: once the command
 * has said its result, the CLI exits without waiting for it.
 */
export function abandonInFlight(): void {
  abandoned = true;
}

export function inFlightAbandoned(): boolean {
  return abandoned;
}

/** What the command has kept so far, said when a signal ends it now (the latest call wins). */
export function keptSoFar(text: string): void {
  kept = text;
}

/** The layer calling it handles the stop signals itself until it calls the function returned. */
export function holdSignals(): () => void {
  held++;
  let released = false;
  return () => {
    if (!released) held--;
    released = true;
  };
}

/** The exit status of a command ended by `signal`: 128 + its number, as shells report it. */
function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** The one way an interruption is said: a line on stderr, and an event under --json. */
export function reportInterrupted(signal: NodeJS.Signals, what: string, json: boolean): number {
  const exitCode = signalExitCode(signal);
  if (json) emit({ event: 'interrupted', signal, kept: what, exitCode });
  process.stderr.write(`relonix: interrupted by ${signal}: ${what}\n`);
  return exitCode;
}

/** Makes the stop signals end the process (by `exit`, the CLI's) with 128+N and the line, unless a layer holds them. */
export function exitOnSignals(json: boolean, exit: (code: number) => never): void {
  for (const sig of STOPS) {
    process.on(sig, () => {
      if (held > 0) return;
      exit(reportInterrupted(sig, kept, json));
    });
  }
}
