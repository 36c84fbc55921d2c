// How a long command shows its progress: live on a terminal, a few plain lines in logs, or one JSON
// event per line for scripts. Decided once per command, the same way for bootstrap and build.
export type UiMode = 'tty' | 'plain' | 'json';

export function pickMode(json: boolean, stream: NodeJS.WriteStream = process.stderr): UiMode {
  if (json) return 'json';
  return stream.isTTY && process.env.TERM !== 'dumb' && !process.env.CI ? 'tty' : 'plain';
}
