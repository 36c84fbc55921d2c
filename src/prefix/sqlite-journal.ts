// Which journal the prefix's Nix database uses: SQLite's write-ahead log (WAL, Nix's default: far
// fewer fsyncs) where the filesystem gives what WAL needs, else the rollback journal. Decided once,
// for a database about to be made, and kept: a database made in WAL mode cannot be opened by a Nix
// told `use-sqlite-wal = false` ("unable to open database file"), so a database on disk decides for
// itself, by its header.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { existingAncestor, fsTypeName } from '../host/filesystem.ts';
import { errnoCode } from '../util/errors.ts';
import { readHead } from '../util/fs.ts';
import type { Layout } from './layout.ts';

export type Journal = 'wal' | 'rollback';

/** The decision as the prefix's state records it. */
export interface JournalRecord {
  journal: Journal;
  /** the filesystem that held var/nix/db when it was decided (statfs names it, e.g. ext4, nfs, 0x1234) */
  fsType: string;
  /** 'filesystem': chosen for a database about to be made; 'database': the database on disk had it already */
  by: 'filesystem' | 'database';
}

/**
 * Where WAL is on. WAL needs a shared-memory index (the `-shm` file, mmap'd by every process that
 * opens the database) and POSIX locks that hold between processes: local filesystems give both.
 * Off everywhere else: NFS, CIFS/SMB, 9p, FUSE (sshfs, virtiofs), Ceph, Lustre and GPFS do not give
 * them reliably (SQLite's own documentation says WAL does not work over a network filesystem).
 * Overlay is off too: statfs names overlay, not the filesystem its upper layer lives on, which in a
 * rootless container can be any of those. A type relonix does not know is off: the rollback journal
 * is slower, never wrong.
 */
const WAL_FILESYSTEMS: ReadonlySet<string> = new Set(['ext4', 'xfs', 'btrfs', 'tmpfs', 'ramfs', 'f2fs', 'zfs', 'bcachefs']);

/** Pure: the journal for a database made on a filesystem of this type (as fsTypeName names it). */
export function journalFor(fsType: string): Journal {
  return WAL_FILESYSTEMS.has(fsType) ? 'wal' : 'rollback';
}

/**
 * Pure: the journal a database's first bytes say it uses, or undefined when they are no SQLite
 * header (no database yet, or an empty file a killed Nix left): bytes 18 and 19 of the header, the
 * file format's write and read versions, are 2 in WAL mode and 1 in rollback mode.
 */
export function journalOfHeader(head: Buffer): Journal | undefined {
  if (head.length < 20 || head.toString('latin1', 0, 16) !== 'SQLite format 3\0') return undefined;
  const [write, read] = [head[18], head[19]];
  if (write === 2 && read === 2) return 'wal';
  if (write === 1 && read === 1) return 'rollback';
  return undefined;
}

/** The prefix's Nix database. */
export const databaseFile = (l: Layout): string => path.join(l.stateDir, 'db', 'db.sqlite');

/** The journal of the prefix's database on disk, undefined when it has none yet. */
export async function databaseJournal(l: Layout): Promise<Journal | undefined> {
  let head: Buffer;
  try {
    head = await readHead(databaseFile(l), 20);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
  return journalOfHeader(head);
}

/** The filesystem var/nix/db is (or will be) on: that of its nearest existing ancestor. */
export async function databaseFilesystem(l: Layout): Promise<string> {
  const st = await fs.statfs(await existingAncestor(path.dirname(databaseFile(l))));
  return fsTypeName(Number(st.type));
}

/**
 * The journal nix.conf must name: the database's own when it exists (never a setting that
 * contradicts it), else one chosen for the filesystem. `recorded` (the state's) keeps its reason
 * while the database agrees with it.
 */
export async function chooseJournal(l: Layout, recorded?: JournalRecord): Promise<JournalRecord> {
  const onDisk = await databaseJournal(l);
  if (onDisk && recorded?.journal === onDisk) return recorded;
  const fsType = await databaseFilesystem(l);
  return onDisk ? { journal: onDisk, fsType, by: 'database' } : { journal: journalFor(fsType), fsType, by: 'filesystem' };
}

/** Pure: the journal and why, in words: `WAL journal (ext4)`, `rollback journal (nfs: WAL needs …)`. */
export function journalWords(r: JournalRecord): string {
  const name = `${r.journal === 'wal' ? 'WAL' : 'rollback'} journal`;
  if (r.by === 'database') return `${name} (the database on disk was made with it, and keeps it)`;
  return r.journal === 'wal' ? `${name} (${r.fsType})` : `${name} (${r.fsType}: WAL needs shared memory and locks it may not give)`;
}

/** What relonix status says of the database: whether it exists, and its journal and why (or what a bootstrap would choose). */
export async function databaseStatus(l: Layout, recorded?: JournalRecord): Promise<JournalRecord & { file: string; exists: boolean }> {
  const r = await chooseJournal(l, recorded);
  return { file: databaseFile(l), exists: (await databaseJournal(l)) !== undefined, ...r };
}
