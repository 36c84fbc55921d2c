import { redactText } from './redact.ts';

/** One JSON object per line on stdout: the event stream `--json` gives scripts; no URL in it carries credentials. */
export function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${redactText(JSON.stringify({ time: new Date().toISOString(), ...event }))}\n`);
}
