// What a directory allows: writing in it, running a program from it, and the room left on its
// filesystem. Bootstrap's preflight refuses a prefix by these facts; relonix doctor reports them.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoWords } from '../util/errors.ts';
import { clearStaleTemps, makeDirs, tempSibling } from '../util/fs.ts';
import { runTool } from '../util/spawn.ts';

/** What can be done in a directory: create it, write in it, run a program from it. */
export interface DirFacts {
  real: string;
  writable: boolean;
  writeError?: string;
  executable: boolean;
  execError?: string;
}

/** Room on a filesystem: bytes and inodes an unprivileged user may still take, and its type. */
export interface SpaceFacts {
  freeBytes: number;
  /** undefined where the filesystem does not count inodes (btrfs reports none) */
  freeInodes?: number;
  fsType: string;
}

/** statfs(2) f_type magic numbers (linux/magic.h) by the name relonix says. 0xEF53 is ext2, ext3 and ext4 alike. */
const STATFS_TYPES: Record<number, string> = {
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  16914836: 'tmpfs',
  2240043254: 'ramfs',
  4076150800: 'f2fs',
  801189825: 'zfs',
  3393526350: 'bcachefs',
  2035054128: 'overlay',
  26985: 'nfs',
  1702057286: 'fuse',
  4283649346: 'cifs',
  4266872130: 'smb2',
  16914839: 'v9fs',
  12805120: 'ceph',
  198183888: 'lustre',
  1196443219: 'gpfs',
};

/** Pure: the name of a filesystem from its statfs(2) f_type, or the number in hex when relonix knows no name. */
export function fsTypeName(type: number): string {
  return STATFS_TYPES[type] ?? `0x${type.toString(16)}`;
}

export async function spaceFacts(dir: string): Promise<SpaceFacts> {
  const st = await fs.statfs(dir);
  return {
    freeBytes: Number(st.bavail) * Number(st.bsize),
    freeInodes: Number(st.files) > 0 ? Number(st.ffree) : undefined,
    fsType: fsTypeName(Number(st.type)),
  };
}

/** A system error as a reason: what it means, and where. */
function inWords(e: unknown): string {
  const at = (e as NodeJS.ErrnoException).path;
  return at ? `${errnoWords(e)} (${at})` : errnoWords(e);
}

/** Creates `make` (a directory at or under `dir`), then writes and runs a probe script in `dir`, and removes it. */
export async function probeDir(dir: string, make: string): Promise<DirFacts> {
  const f: DirFacts = { real: dir, writable: true, executable: true };
  try {
    // Node's recursive mkdir spins for ever where a parent refuses new entries (/proc)
    await makeDirs(make);
    f.real = await fs.realpath(dir);
  } catch (e) {
    return { ...f, writable: false, writeError: inWords(e) };
  }
  // what a run killed between writing and removing its probe left
  await clearStaleTemps(path.join(dir, 'probe'));
  const probe = tempSibling(path.join(dir, 'probe'));
  try {
    await fs.writeFile(probe, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const r = await runTool(probe, [], process.env).catch((e: Error) => e);
    const execError = r instanceof Error ? r.message : r.code !== 0 ? `the probe exited with ${r.code ?? r.signal}` : undefined;
    if (execError !== undefined) {
      f.executable = false;
      f.execError = execError;
    }
  } catch (e) {
    f.writable = false;
    f.writeError = inWords(e);
  } finally {
    await fs.rm(probe, { force: true });
  }
  return f;
}

/** The nearest directory at or above `dir` that exists: where a prefix not made yet would be created. */
export async function existingAncestor(dir: string): Promise<string> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      if ((await fs.stat(d)).isDirectory()) return d;
    } catch {}
    if (d === path.dirname(d)) return d;
  }
}
