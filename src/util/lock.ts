import { constants as C, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RelonixError } from './errors.ts';
import { makeDirs, tempSibling } from './fs.ts';
import { processAlive, readProcStat } from './proc.ts';

export interface LockOwner {
  pid: number;
  host: string;
  since: string;
  what: string;
  /** the owner's start time (field 22 of /proc/PID/stat): a pid reused by another process has another */
  start?: string;
}

export interface LockOptions {
  what: string;
  /** how long to wait for another holder; 0 fails at once */
  waitMs?: number;
  onWait?: (owner: LockOwner) => void;
  /** what to do about a holder, when it is more than waiting or --wait (the refusal's fix) */
  busyHint?: string;
}

/** Another live relonix holds a lock: the one way that is said, whichever lock it is. */
export function lockBusy(
  lockFile: string,
  owner: LockOwner | undefined,
  hint = 'wait for it to finish, or pass --wait SECONDS to queue behind it',
): RelonixError {
  return new RelonixError(`another relonix (${owner ? `pid ${owner.pid}, ${owner.what}, since ${owner.since}` : 'starting up'}) holds ${lockFile}`, {
    kind: 'busy',
    hint,
  });
}

/** The lock file appears whole or not at all: written aside, then hard-linked to its name (which fails if taken). */
async function create(lockFile: string, me: LockOwner): Promise<boolean> {
  const body = JSON.stringify(me);
  const tmp = tempSibling(lockFile);
  await fs.writeFile(tmp, body, { mode: 0o644 });
  try {
    await fs.link(tmp, lockFile);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'EOPNOTSUPP' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw e;
    // a filesystem without hard links: create exclusively, and write in one call
    try {
      const fh = await fs.open(lockFile, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o644);
      try {
        await fh.writeFile(body);
      } finally {
        await fh.close();
      }
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e2;
    }
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** Torn content can only come from the one-write fallback above, while it writes: a second is plenty. */
const TORN_GRACE_MS = 1000;

async function isStale(lockFile: string, owner: LockOwner | undefined): Promise<boolean> {
  if (owner) return owner.host === os.hostname() && !processAlive(owner.pid, owner.start);
  try {
    return Date.now() - (await fs.stat(lockFile)).mtimeMs > TORN_GRACE_MS;
  } catch {
    return true;
  }
}

/** Who holds a lock now, when a live process does (a lock left by a dead one is not held). */
export async function lockHolder(lockFile: string): Promise<LockOwner | undefined> {
  let owner: LockOwner | undefined;
  try {
    owner = JSON.parse(await fs.readFile(lockFile, 'utf8')) as LockOwner;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  }
  return (await isStale(lockFile, owner)) ? undefined : owner;
}

/**
 * An exclusive lock file holding its owner's pid and start time. A lock whose owner died (kill -9,
 * a restarted container) is taken over, since the work it guarded is idempotent and resumable.
 */
export async function withLock<T>(lockFile: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  await makeDirs(path.dirname(lockFile));
  const deadline = Date.now() + (opts.waitMs ?? 0);
  const me: LockOwner = {
    pid: process.pid,
    host: os.hostname(),
    since: new Date().toISOString(),
    what: opts.what,
    start: readProcStat(process.pid)?.startTime,
  };
  let told = false;
  while (!(await create(lockFile, me))) {
    let owner: LockOwner | undefined;
    try {
      owner = JSON.parse(await fs.readFile(lockFile, 'utf8')) as LockOwner;
    } catch {
      owner = undefined; // torn, or gone since
    }
    if (await isStale(lockFile, owner)) {
      // rename-then-remove so two waiters cannot both delete a lock a third just took
      const grave = `${lockFile}.stale.${process.pid}`;
      try {
        await fs.rename(lockFile, grave);
        await fs.rm(grave, { force: true });
      } catch {}
      continue;
    }
    if (Date.now() >= deadline) {
      throw lockBusy(lockFile, owner, opts.busyHint);
    }
    if (!told && owner) {
      opts.onWait?.(owner);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockFile, { force: true });
  }
}
