// Whether orphans are reaped. In many containers PID 1 is the application or a shell that never
// waits for the children it inherits: every process killed after its parent died (a build, a Nix)
// stays a zombie and keeps its pid. relonix's locks see through zombies; the pids do not come back.
import { readFileSync } from 'node:fs';
import { errorMessage } from '../util/errors.ts';
import { listProcesses, readProcStat } from '../util/proc.ts';
import { runTool } from '../util/spawn.ts';

export type ReaperFacts =
  | {
      known: true;
      /** whether the orphan was waited for once it had exited */
      reaped: boolean;
      /** the process orphans go to: PID 1 of this pid namespace, or a subreaper */
      reaper: { pid: number; name: string };
      /** zombies the reaper has not waited for already */
      zombies: number;
    }
  | { known: false; why: string };

/**
 * How long an orphan is given to be reaped once it is a zombie. Most inits reap at once, but some
 * PID 1s of container platforms reap on a timer: zombies lived 1 to 1.7 s under one here, longer
 * when the machine is loaded. Only a host whose PID 1 never reaps waits this long.
 */
const REAP_MS = 5000;
/** How long the orphan lives: long enough that its shell has exited and left it to the reaper. */
const ORPHAN_SECONDS = 0.3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** Zombies whose parent is `pid`, counted from /proc, but for the probe's own orphan. */
async function zombiesOf(pid: number, orphan: number): Promise<number> {
  return (await listProcesses()).filter((p) => p.pid !== orphan && p.state === 'Z' && p.ppid === pid).length;
}

/**
 * Makes an orphan (a `sleep` whose shell exits at once) and watches its /proc entry: once it has
 * exited, it disappears if its new parent reaps, and stays a zombie if not.
 */
export async function probeReaper(): Promise<ReaperFacts> {
  let pid: number;
  try {
    const r = await runTool('sh', ['-c', `sleep ${ORPHAN_SECONDS} </dev/null >/dev/null 2>&1 & echo $!`], { PATH: process.env.PATH ?? '/usr/bin:/bin' });
    pid = Number(r.stdout.trim());
    if (r.code !== 0 || !Number.isInteger(pid) || pid <= 0) return { known: false, why: `sh did not start an orphan: ${r.all.trim()}` };
  } catch (e) {
    return { known: false, why: `sh could not be run: ${errorMessage(e)}` };
  }
  const first = readProcStat(pid);
  if (!first) return { known: false, why: '/proc does not show the orphan (no /proc, or hidepid)' };
  // its shell has exited: the parent now is whoever orphans go to
  const reaper = { pid: first.ppid, name: commOf(first.ppid) };
  let zombieSince: number | undefined;
  for (const deadline = Date.now() + ORPHAN_SECONDS * 1000 + 10_000; Date.now() < deadline; await sleep(20)) {
    const st = readProcStat(pid);
    if (!st || st.startTime !== first.startTime) return { known: true, reaped: true, reaper, zombies: await zombiesOf(reaper.pid, pid) };
    if (st.state !== 'Z') continue;
    zombieSince ??= Date.now();
    if (Date.now() - zombieSince >= REAP_MS) {
      return { known: true, reaped: false, reaper, zombies: await zombiesOf(reaper.pid, pid) };
    }
  }
  return { known: false, why: `the orphan (pid ${pid}) had not exited after ${ORPHAN_SECONDS + 10} s` };
}
