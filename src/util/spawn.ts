import { spawn } from 'node:child_process';

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout and stderr interleaved, for error messages */
  all: string;
}

/**
 * Runs a program to completion with exactly `env`. node:child_process rather than execa here:
 * the installer runs a handful of short tools, and execa's import cost is a tenth of a fast run.
 */
export function runTool(bin: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let all = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d;
      all += d;
    });
    child.stderr!.on('data', (d: Buffer) => (all += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, all }));
    if (input !== undefined) {
      child.stdin!.on('error', () => {}); // the tool may exit before reading everything; its exit code tells
      child.stdin!.end(input);
    }
  });
}
