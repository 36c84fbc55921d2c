import { promises as fs, constants as C } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { RelonixError } from './errors.ts';

interface LockOwner {
  pid: number;
  host: string;
  since: string;
  what: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LockOptions {
  what: string;
  /** how long to wait for another holder; 0 fails at once */
  waitMs?: number;
  onWait?: (owner: LockOwner) => void;
}

/**
 * An exclusive lock file (O_EXCL) holding its owner's pid. A lock whose owner died (kill -9, a
 * restarted container) is taken over, since the work it guarded is idempotent and resumable.
 */
export async function withLock<T>(lockFile: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(path.dirname(lockFile), { recursive: true });
  const deadline = Date.now() + (opts.waitMs ?? 0);
  const me: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), what: opts.what };
  let told = false;
  for (;;) {
    try {
      const fh = await fs.open(lockFile, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o644);
      await fh.writeFile(JSON.stringify(me));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner: LockOwner | undefined;
    try {
      owner = JSON.parse(await fs.readFile(lockFile, 'utf8')) as LockOwner;
    } catch {
      owner = undefined; // being written right now, or torn by a crash
    }
    const stale = owner ? owner.host === os.hostname() && !alive(owner.pid) : await olderThan(lockFile, 10_000);
    if (stale) {
      // rename-then-remove so two waiters cannot both delete a lock a third just took
      const grave = `${lockFile}.stale.${process.pid}`;
      try {
        await fs.rename(lockFile, grave);
        await fs.rm(grave, { force: true });
      } catch {}
      continue;
    }
    if (Date.now() >= deadline) {
      throw new RelonixError(
        `another relonix (${owner ? `pid ${owner.pid}, ${owner.what}, since ${owner.since}` : 'starting up'}) holds ${lockFile}`,
        { kind: 'busy', hint: 'wait for it to finish, or pass --wait SECONDS to queue behind it' },
      );
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

async function olderThan(p: string, ms: number): Promise<boolean> {
  try {
    const st = await fs.stat(p);
    return Date.now() - st.mtimeMs > ms;
  } catch {
    return true;
  }
}
