// The durable queue between Nix's post-build hook and the uploader, under <prefix>/var/relonix/build:
// `queue` gets one derivation a line from the hook as each build finishes, `done` one a line as the
// uploader has its outputs, their closure and its log in the cache. Both are only ever appended to
// (and synced), so a kill at any moment loses nothing that was written; pending = queue − done.
import { constants as C, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../prefix/layout.ts';
import { listDir } from '../util/fs.ts';

export interface QueueFiles {
  dir: string;
  queue: string;
  done: string;
  /** the derivations the current (or last) nix-build announced it would build */
  plan: string;
  hook: string;
  lock: string;
}

export function queueFiles(l: Layout): QueueFiles {
  const dir = l.buildDir;
  return {
    dir,
    queue: path.join(dir, 'queue'),
    done: path.join(dir, 'done'),
    plan: path.join(dir, 'plan'),
    hook: path.join(dir, 'post-build-hook'),
    lock: l.buildLockFile,
  };
}

/** The queue set aside while it is compacted; read as part of the queue until it is gone. */
const ASIDE = '.compacting';

/** Appends whole lines in one write and syncs them before returning. */
export async function appendLines(file: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await fs.mkdir(path.dirname(file), { recursive: true });
  const fh = await fs.open(file, C.O_WRONLY | C.O_APPEND | C.O_CREAT, 0o644);
  try {
    await fh.write(lines.map((x) => `${x}\n`).join(''));
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Pure: the complete lines that name a derivation. A line a kill cut short has no newline yet and
 * is left for the next read; anything that is not an absolute `.drv` path is not an entry.
 */
export function parseEntries(text: string): { entries: string[]; rest: string } {
  const end = text.lastIndexOf('\n');
  const whole = end === -1 ? '' : text.slice(0, end);
  const entries = whole.split('\n').filter((x) => x.startsWith('/') && x.endsWith('.drv') && !/\s/.test(x));
  return { entries, rest: text.slice(end + 1) };
}

async function readEntries(file: string): Promise<string[]> {
  const text = await fs.readFile(file, 'latin1').catch(() => '');
  return parseEntries(text.endsWith('\n') ? text : `${text}\n`).entries;
}

export interface QueueState {
  /** in the order they were queued, each once */
  pending: string[];
  done: Set<string>;
}

export async function readQueue(q: QueueFiles): Promise<QueueState> {
  const done = new Set(await readEntries(q.done));
  const queued = [...(await readEntries(q.queue + ASIDE)), ...(await readEntries(q.queue))];
  return { pending: [...new Set(queued)].filter((d) => !done.has(d)), done };
}

/**
 * Starts both files afresh once everything in them is done (the caller holds the build lock). The
 * queue is renamed aside first and read again: a hook of a Nix that outlived its relonix may have
 * appended to it meanwhile, and such a line goes back into the new queue. A kill half-way leaves
 * entries pending twice at worst, never lost.
 */
export async function compactQueue(q: QueueFiles): Promise<void> {
  const { pending } = await readQueue(q);
  if (pending.length > 0) return;
  try {
    await fs.rename(q.queue, q.queue + ASIDE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const done = new Set(await readEntries(q.done));
  await appendLines(
    q.queue,
    (await readEntries(q.queue + ASIDE)).filter((d) => !done.has(d)),
  );
  await fs.rm(q.done, { force: true });
  await fs.rm(q.queue + ASIDE, { force: true });
}

/** Follows the queue file as the hook appends to it: each call returns the entries added since. */
export class QueueTail {
  private offset = 0;
  private rest = '';
  constructor(private readonly file: string) {}

  /** Skips what the file holds now: the caller has read it another way. */
  async skipExisting(): Promise<void> {
    this.offset = (await fs.stat(this.file).catch(() => undefined))?.size ?? 0;
  }

  async next(): Promise<string[]> {
    const st = await fs.stat(this.file).catch(() => undefined);
    if (!st) {
      this.offset = 0;
      return [];
    }
    // a smaller file is a new one (compacted): read it from the start
    if (st.size < this.offset) this.offset = 0;
    if (st.size === this.offset) return [];
    const fh = await fs.open(this.file, 'r');
    try {
      const buf = Buffer.alloc(st.size - this.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
      this.offset += bytesRead;
      const { entries, rest } = parseEntries(this.rest + buf.subarray(0, bytesRead).toString('latin1'));
      this.rest = rest;
      return entries;
    } finally {
      await fh.close();
    }
  }
}

/** What `relonix status` shows: the derivations that finished building and are not in the cache yet. */
export async function queueStatus(l: Layout): Promise<{ pending: string[]; dir: string }> {
  const q = queueFiles(l);
  if ((await listDir(q.dir)).length === 0) return { pending: [], dir: q.dir };
  return { pending: (await readQueue(q)).pending, dir: q.dir };
}
