// Running relonix as its users do: the built launcher, as root or as a uid with no passwd entry and
// an empty environment, on a host that never had Nix (the test machine's own Nix hidden behind
// tripwires, helpers/hide-nix.ts). Every test that runs relonix, or the Nix it installs, as a user
// goes through these runners. The two that leave the host's Nix in sight (relonix patchelf, and the
// cache tests' runs beside Debian's Nix) say why at their definition below.
import { type ChildProcess, spawn } from 'node:child_process';
import { withoutHostNix } from './hide-nix.ts';
import { RELONIX } from './paths.ts';
import { type Run, run } from './tools.ts';

/**
 * The exit codes of the CLI contract (README, `relonix --help`), written out here rather than
 * imported: a test of the contract must not follow a change to the code it tests.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  integrity: 3,
  busy: 4,
  preflight: 5,
  network: 6,
} as const;

/** A uid with no passwd entry: Nix must get USER and HOME from relonix. */
export const NOBODY_UID = 4242;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RelonixEvent {
  event: string;
  stage?: string;
  status?: string;
  text?: string;
  [k: string]: unknown;
}

/** argv that runs `argv` as `uid` with an empty environment, as a rootless container user would. */
function dropTo(uid: number, argv: string[], extraEnv: string[] = []): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'env', '-i', 'PATH=/usr/bin:/bin', ...extraEnv, ...argv];
}

/** How a test runs relonix beyond its arguments. */
export interface RunAs {
  /** the uid (root when undefined) */
  uid?: number;
  /** VAR=value for the unprivileged uid's empty environment, or root's */
  extraEnv?: string[];
  /** a program relonix is handed to (a subreaper, a seccomp filter, setarch) */
  via?: string[];
  /** the node that runs relonix (default: the one running the tests) */
  node?: string;
  /** sh lines run as root inside the private mount namespace first (mounts, joining a cgroup) */
  setup?: string;
}

/**
 * argv that runs `relonix ARGS` (as `uid`, or as root when undefined) on a host with no Nix of its
 * own. `via` is a program relonix is handed to (a subreaper, say), inside the hidden host.
 */
export function asUser(uid: number | undefined, args: string[], extraEnv: string[] = [], via: string[] = []): { cmd: string; argv: string[] } {
  return argvAs(args, { uid, extraEnv, via });
}

function argvAs(args: string[], o: RunAs): { cmd: string; argv: string[] } {
  const relonixArgv = [...(o.via ?? []), o.node ?? process.execPath, RELONIX, ...args];
  const dropped = o.uid === undefined ? relonixArgv : dropTo(o.uid, relonixArgv, o.extraEnv);
  const inner = o.setup ? ['sh', '-c', `set -e\n${o.setup}\nexec "$@"`, 'setup', ...dropped] : dropped;
  const [cmd, ...argv] = withoutHostNix(inner);
  return { cmd: cmd!, argv };
}

/** Runs `relonix ARGS` as RunAs says, on a host with no Nix of its own. */
export function relonixAs(args: string[], o: RunAs): Promise<RunResult> {
  const { cmd, argv } = argvAs(args, o);
  return collect(spawn(cmd, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], env: rootEnv(o.uid, o.extraEnv ?? []) }));
}

/** The environment relonix starts with: root's is PATH and extraEnv; the uid's is made empty by env -i. */
function rootEnv(uid: number | undefined, extraEnv: string[]): NodeJS.ProcessEnv {
  return uid === undefined ? { PATH: '/usr/bin:/bin', ...Object.fromEntries(extraEnv.map((e) => e.split(/=(.*)/s).slice(0, 2))) } : {};
}

/** Resolves to a child's status and output once it has closed. */
export function collect(child: ChildProcess): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

export function spawnRelonix(uid: number | undefined, args: string[], extraEnv: string[] = []): { child: ChildProcess; done: Promise<RunResult> } {
  const { cmd, argv } = asUser(uid, args, extraEnv);
  const child = spawn(cmd, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], env: rootEnv(uid, extraEnv) });
  return { child, done: collect(child) };
}

export async function relonix(uid: number | undefined, args: string[], extraEnv: string[] = []): Promise<RunResult> {
  return spawnRelonix(uid, args, extraEnv).done;
}

/** Runs a shell command line as the uid with an empty environment, on a host with no Nix of its own. */
export function shAs(uid: number, script: string): Promise<RunResult> {
  const [cmd, ...argv] = withoutHostNix(dropTo(uid, ['sh', '-c', script]));
  return collect(spawn(cmd!, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** The events of a `--json` run: its stdout, one JSON object a line. */
export function events(stdout: string): RelonixEvent[] {
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as RelonixEvent);
}

/** Calls `fn` with each complete line of a stream, as the lines come. */
export function onLines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let buf = '';
  stream.on('data', (d: Buffer | string) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      fn(line);
    }
  });
}

/** The event a `--json` line carries, or undefined for a line that is not one. */
export function eventOf(line: string): RelonixEvent | undefined {
  try {
    return JSON.parse(line) as RelonixEvent;
  } catch {
    return undefined;
  }
}

/**
 * Runs `relonix ARGS` (which must include --json) and sends it SIGKILL `ms` milliseconds after the
 * first event for which `when` returns a number of ms: a blow at a chosen moment of a chosen stage.
 */
export function strikeRelonix(
  args: string[],
  when: (ev: RelonixEvent) => number | undefined,
): Promise<RunResult & { events: RelonixEvent[]; struck: boolean }> {
  const { child, done } = spawnRelonix(undefined, args);
  const seen: RelonixEvent[] = [];
  let struck = false;
  onLines(child.stdout!, (line) => {
    const ev = eventOf(line);
    if (!ev) return; // not an event line
    seen.push(ev);
    const ms = struck ? undefined : when(ev);
    if (ms !== undefined) {
      struck = true;
      setTimeout(() => child.kill('SIGKILL'), ms);
    }
  });
  return done.then((r) => ({ ...r, events: seen, struck }));
}

/**
 * `relonix patchelf ARGS` as root in the test's own environment: it reads and writes ELF files and
 * never runs Nix, so there is no host Nix to hide and no root needed for a mount namespace.
 */
export function relonixPatchelf(args: string[]): Run {
  return run(process.execPath, [RELONIX, 'patchelf', ...args]);
}

/**
 * `relonix ARGS` as root next to the host's own Nix, which the test points it at (`--nix-store
 * /usr/bin/nix-store`, NIX_STORE_DIR of a store Debian's Nix keeps): for the cache tests, where
 * that Nix is the peer whose stores and caches relonix must read and write.
 */
export function relonixWithHostNix(args: string[], env: NodeJS.ProcessEnv = process.env): Run {
  return run(process.execPath, [RELONIX, ...args], { env });
}

/** relonixWithHostNix, left running: for a test that strikes it, or serves it from this process. */
export function spawnRelonixWithHostNix(args: string[], env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; done: Promise<RunResult> } {
  const child = spawn(process.execPath, [RELONIX, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return { child, done: collect(child) };
}
