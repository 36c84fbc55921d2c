import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withoutHostNix } from './hide-nix.ts';

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const RELONIX = path.join(REPO, 'bin', 'relonix.js');
/** A uid with no passwd entry: Nix must get USER and HOME from relonix. */
export const NOBODY_UID = 4242;

export function requireTool(name: string, pkg: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'pipe' });
  } catch {
    throw new Error(`${name} is required by this test (apt-get install ${pkg}); .ci/run installs it`);
  }
}

export function requireRoot(why: string): void {
  if (process.getuid?.() !== 0) throw new Error(`this test must run as root (${why}); CI runs as root`);
}

/** A fresh prefix directory under /tmp owned by the unprivileged uid. */
export async function prefixFor(uid: number | undefined, tag: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `relonix-${tag}-`));
  if (uid !== undefined) await fs.chown(dir, uid, uid);
  return path.join(dir, 'nix');
}

/** argv that runs `argv` as `uid` with an empty environment, as a rootless container user would. */
function dropTo(uid: number, argv: string[], extraEnv: string[] = []): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'env', '-i', 'PATH=/usr/bin:/bin', ...extraEnv, ...argv];
}

/**
 * argv that runs `relonix ARGS` (as `uid`, or as root when undefined) on a host with no Nix of its
 * own: the test machine's Nix is hidden (helpers/hide-nix.ts).
 */
export function asUser(uid: number | undefined, args: string[], extraEnv: string[] = []): { cmd: string; argv: string[] } {
  const relonixArgv = [process.execPath, RELONIX, ...args];
  const [cmd, ...argv] = withoutHostNix(uid === undefined ? relonixArgv : dropTo(uid, relonixArgv, extraEnv));
  return { cmd: cmd!, argv };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function spawnRelonix(uid: number | undefined, args: string[], extraEnv: string[] = []): { child: ChildProcess; done: Promise<RunResult> } {
  const { cmd, argv } = asUser(uid, args, extraEnv);
  const t0 = Date.now();
  const child = spawn(cmd, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], env: uid === undefined ? { PATH: '/usr/bin:/bin', ...Object.fromEntries(extraEnv.map((e) => e.split(/=(.*)/s).slice(0, 2))) } : {} });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<RunResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 })),
  );
  return { child, done };
}

export async function relonix(uid: number | undefined, args: string[], extraEnv: string[] = []): Promise<RunResult> {
  return spawnRelonix(uid, args, extraEnv).done;
}

/** Runs a shell command line as the uid with an empty environment, on a host with no Nix of its own. */
export function shAs(uid: number, script: string): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const [cmd, ...argv] = withoutHostNix(dropTo(uid, ['sh', '-c', script]));
    const child = spawn(cmd!, argv, {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 }));
  });
}

/** Store dirs are read-only; make a test prefix removable, then remove it. */
export async function removePrefix(dir: string): Promise<void> {
  execFileSync('sh', ['-c', `chmod -R u+w "${dir}" 2>/dev/null; rm -rf "${dir}"`]);
}

export interface RelonixEvent {
  event: string;
  stage?: string;
  status?: string;
  text?: string;
}

/**
 * Runs `relonix ARGS` (which must include --json) and sends it SIGKILL `ms` milliseconds after the
 * first event for which `when` returns a number of ms: a blow at a chosen moment of a chosen stage.
 */
export function strikeRelonix(args: string[], when: (ev: RelonixEvent) => number | undefined): Promise<RunResult & { events: RelonixEvent[]; struck: boolean }> {
  const { child, done } = spawnRelonix(undefined, args);
  const events: RelonixEvent[] = [];
  let struck = false;
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let ev: RelonixEvent;
      try {
        ev = JSON.parse(line);
      } catch {
        continue; // not an event line
      }
      events.push(ev);
      const ms = struck ? undefined : when(ev);
      if (ms !== undefined) {
        struck = true;
        setTimeout(() => child.kill('SIGKILL'), ms);
      }
    }
  });
  return done.then((r) => ({ ...r, events, struck }));
}
