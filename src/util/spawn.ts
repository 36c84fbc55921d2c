// How relonix runs the programs a command needs (Nix's tools, xz, zstd, ssh, the user's command):
// node:child_process spawn, in four shapes (runTool, pipeThrough, runForeground, startPiped), all of
// them ended with relonix. The translator's detached server (translator/client.ts), the host probe
// (host/syscalls.ts) and the fixture builders (demo/) start theirs on their own. execa would do the
// same, but its import costs a tenth of a fast run, and the installer runs short tools often.
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import { holdSignals } from './signals.ts';

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved, for error messages */
  all: string;
}

/** The tools running now: when relonix exits (a signal ended it), they end with it. */
const running = new Set<ChildProcess>();
let reaping = false;

function track(child: ChildProcess): void {
  if (!reaping) {
    reaping = true;
    process.on('exit', () => {
      for (const c of running) c.kill('SIGTERM');
    });
  }
  running.add(child);
  child.once('close', () => running.delete(child));
  child.once('error', () => running.delete(child));
}

/**
 * Runs a program to completion with exactly `env`, `input` (text, or a stream such as a file's) on
 * its stdin. Rejects only when it cannot be started, or when `signal` kills it first.
 */
export function runTool(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string | NodeJS.ReadableStream,
  signal?: AbortSignal,
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(signal ? { signal, killSignal: 'SIGKILL' as const } : {}),
    });
    track(child);
    let stdout = '';
    let stderr = '';
    let all = '';
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      stdout += d;
      all += d;
    });
    child.stderr!.on('data', (d: string) => {
      stderr += d;
      all += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, all }));
    if (input !== undefined) {
      child.stdin!.on('error', () => {}); // the tool may exit before reading everything; its exit code tells
      if (typeof input === 'string') child.stdin!.end(input);
      else input.pipe(child.stdin!);
    }
  });
}

/**
 * Streams bytes through a filter program (xz, zstd) both ways. The program's failure (its stderr,
 * or its exit status) becomes an Error worded by `failure`; stopping early kills it, and so does
 * `signal` (then the stream ends with the signal's abort error).
 */
export async function* pipeThrough(
  bin: string,
  args: string[],
  src: AsyncIterable<Uint8Array>,
  failure: (detail: string) => Error,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(signal ? { signal, killSignal: 'SIGKILL' as const } : {}) });
  track(child);
  // a program that left a child of its own holding its output (a wrapper script) would keep the
  // output open past its own end: stop reading it
  signal?.addEventListener('abort', () => child.stdout.destroy(), { once: true });
  const name = path.basename(bin);
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  exited.catch(() => undefined);
  const stdin = child.stdin;
  stdin.on('error', () => undefined);
  // a writable that went away (the program exited early) never emits drain: wait for close too
  const writable = () =>
    new Promise<void>((r) => {
      const done = () => {
        stdin.off('drain', done);
        stdin.off('close', done);
        r();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const b of src) {
        if (stdin.destroyed) break;
        if (!stdin.write(b)) await writable();
      }
    } catch (e) {
      feedError = e;
    } finally {
      stdin.end();
    }
  })();
  try {
    for await (const b of child.stdout) yield b as Buffer;
    await feeding;
    if (feedError) throw feedError;
    const code = await exited;
    if (code !== 0) throw failure(Buffer.concat(err).toString().trim() || `${name} exited with ${code}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export interface ForegroundResult {
  /** what a shell would report: the program's status, 128 + signal, 127 not found, 126 not runnable */
  code: number;
  /** why the program could not be started */
  startError?: NodeJS.ErrnoException;
}

/**
 * Runs a program in the foreground (the terminal is its own) and passes on the signals relonix
 * gets, as a shell does. `stdout`: for a command whose own result is what goes on stdout, the
 * program's is dropped ('ignore') or sent to stderr ('stderr'), while its progress still shows.
 */
export async function runForeground(cmd: string, args: string[], env: NodeJS.ProcessEnv, o: { stdout?: 'ignore' | 'stderr' } = {}): Promise<ForegroundResult> {
  // forwarders first: a signal that comes while the child starts is passed on once it exists (libuv
  // holds signals back during spawn, so one sent then used to find no handler and kill relonix)
  let child: ChildProcess | undefined;
  const pending: NodeJS.Signals[] = [];
  const forward = (sig: NodeJS.Signals) => (child ? child.kill(sig) : pending.push(sig));
  const release = holdSignals();
  for (const s of FORWARDED) process.on(s, forward);
  const stdout = o.stdout === 'ignore' ? 'ignore' : o.stdout === 'stderr' ? 2 : 'inherit';
  const c = spawn(cmd, args, { env, stdio: ['inherit', stdout, 'inherit'] });
  child = c;
  for (const sig of pending) c.kill(sig);
  try {
    return await ended(c);
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
    release();
  }
}

/** How a child ended, as a shell reports it. */
function ended(c: ChildProcess): Promise<ForegroundResult> {
  return new Promise<ForegroundResult>((resolve) => {
    c.once('error', (e: NodeJS.ErrnoException) => resolve({ code: e.code === 'ENOENT' ? 127 : e.code === 'EACCES' ? 126 : 1, startError: e }));
    c.once('exit', (code, signal) => resolve({ code: signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1) }));
  });
}

export interface PipedChild {
  child: ChildProcess;
  /** resolves once the program has exited and both of its streams are read to their end */
  done: Promise<ForegroundResult>;
}

/**
 * Starts a long-running program whose stdout and stderr the caller reads as they come (no stdin);
 * the caller decides what signals it gets.
 */
export function startPiped(cmd: string, args: string[], env: NodeJS.ProcessEnv): PipedChild {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const streams = [child.stdout!, child.stderr!].map((s) => new Promise<void>((r) => s.once('close', () => r())));
  const done = ended(child).then(async (r) => {
    if (!r.startError) await Promise.all(streams);
    return r;
  });
  return { child, done };
}
