// Whether a process still runs: what locks and abandoned staging directories are judged by.
import { promises as fs, readFileSync } from 'node:fs';

export interface ProcStat {
  /** R, S, D, T, Z (zombie), X (dead), … */
  state: string;
  /** the parent: whoever reaps it when it exits */
  ppid: number;
  /** clock ticks after boot */
  startTime: string;
}

/**
 * The fields of /proc/PID/stat that liveness and reaping need. Field 2 is the command name in parentheses,
 * which may itself hold spaces and parentheses, so the fields are counted from the last ')'.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // fields 3, 4, … follow ") "
  const fields = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const [state, ppid] = fields;
  const startTime = fields[22 - 3];
  if (!state || !/^[A-Za-z]$/.test(state) || !ppid || !/^\d+$/.test(ppid) || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { state, ppid: Number(ppid), startTime };
}

/** /proc/PID/stat, or undefined when it cannot be read (no such process, or /proc hides it). */
export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return undefined;
  }
}

/** Every process /proc shows, with its stat (none without /proc; one that ended meanwhile is left out). */
export async function listProcesses(): Promise<(ProcStat & { pid: number })[]> {
  const out: (ProcStat & { pid: number })[] = [];
  for (const name of await fs.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const st = readProcStat(Number(name));
    if (st) out.push({ ...st, pid: Number(name) });
  }
  return out;
}

function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether a process still runs, from its /proc/PID/stat (undefined when unreadable) and the start
 * time recorded for it. kill(pid, 0) alone cannot tell: it succeeds on a zombie, and in containers
 * whose PID 1 does not reap, a process killed after its parent died stays one for good. So /proc
 * decides when it can: state Z or X is dead, and another start time is another process that got
 * the same pid. Without /proc (or with hidepid), kill(pid, 0) answers.
 */
export function judgeAlive(stat: Pick<ProcStat, 'state' | 'startTime'> | undefined, start: string | undefined, canSignal: () => boolean): boolean {
  if (!stat) return canSignal();
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return start === undefined || start === stat.startTime;
}

/** Whether `pid` runs, and (given its recorded start time) is still the process it was. */
export function processAlive(pid: number, start?: string): boolean {
  return judgeAlive(readProcStat(pid), start, () => signalable(pid));
}
