/** One JSON object per line on stdout: the event stream `--json` gives scripts. */
export function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
}
