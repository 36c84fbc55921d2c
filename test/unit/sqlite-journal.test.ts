// The journal of the prefix's Nix database: WAL on local filesystems, the rollback journal elsewhere
// and on any filesystem relonix does not know, read back from a database's header, and never a
// nix.conf setting that contradicts the database on disk.

import assert from 'node:assert/strict';
import { promises as fs, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fsTypeName } from '../../src/host/filesystem.ts';
import { layout } from '../../src/prefix/layout.ts';
import { BEGIN, END, nixConfBlock, withBuildHook } from '../../src/prefix/nix-conf.ts';
import {
  chooseJournal,
  databaseFile,
  databaseFilesystem,
  databaseJournal,
  type JournalRecord,
  journalFor,
  journalOfHeader,
  journalWords,
} from '../../src/prefix/sqlite-journal.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-journal-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('the journal by filesystem: WAL on local ones, rollback on network, FUSE, cluster, overlay and unknown ones', () => {
  // statfs(2) f_type magic numbers, as linux/magic.h and the filesystems' own headers give them
  const table: [number, string, 'wal' | 'rollback'][] = [
    [0xef53, 'ext4', 'wal'],
    [0x58465342, 'xfs', 'wal'],
    [0x9123683e, 'btrfs', 'wal'],
    [0x01021994, 'tmpfs', 'wal'],
    [0x858458f6, 'ramfs', 'wal'],
    [0xf2f52010, 'f2fs', 'wal'],
    [0x2fc12fc1, 'zfs', 'wal'],
    [0xca451a4e, 'bcachefs', 'wal'],
    [0x6969, 'nfs', 'rollback'],
    [0xff534d42, 'cifs', 'rollback'],
    [0xfe534d42, 'smb2', 'rollback'],
    [0x01021997, 'v9fs', 'rollback'],
    [0x65735546, 'fuse', 'rollback'],
    [0x0bd00bd0, 'lustre', 'rollback'],
    [0x47504653, 'gpfs', 'rollback'],
    [0x00c36400, 'ceph', 'rollback'],
    [0x794c7630, 'overlay', 'rollback'],
    [0x12345678, '0x12345678', 'rollback'],
  ];
  for (const [magic, name, journal] of table) {
    assert.equal(fsTypeName(magic), name, `0x${magic.toString(16)}`);
    assert.equal(journalFor(name), journal, name);
  }
});

/** The first bytes of a SQLite database whose file format versions (bytes 18 and 19) are `v`. */
const header = (v: number, length = 100) => {
  const b = Buffer.alloc(length);
  b.write('SQLite format 3\0', 0, 'latin1');
  b.writeUInt16BE(4096, 16);
  b[18] = v;
  b[19] = v;
  return b;
};

test('the header says the journal: 2 and 2 is WAL, 1 and 1 rollback; anything else is no database', () => {
  assert.equal(journalOfHeader(header(2)), 'wal');
  assert.equal(journalOfHeader(header(1)), 'rollback');
  assert.equal(journalOfHeader(header(1, 20)), 'rollback', 'the 20 bytes read are enough');
  assert.equal(journalOfHeader(Buffer.alloc(0)), undefined, 'an empty file a killed Nix left');
  assert.equal(journalOfHeader(header(2, 19)), undefined, 'too short');
  assert.equal(journalOfHeader(header(3)), undefined);
  const mixed = header(1);
  mixed[19] = 2;
  assert.equal(journalOfHeader(mixed), undefined);
  const other = header(2);
  other.write('SQLite format 2', 0, 'latin1');
  assert.equal(journalOfHeader(other), undefined);
});

test('a database on disk decides; with none, the filesystem of var/nix/db (or its nearest existing ancestor) does', async () => {
  const l = layout(path.join(tmp, 'p'));
  const fsType = await databaseFilesystem(l);
  assert.equal(fsType, fsTypeName(Number((await fs.statfs(tmp)).type)), 'the prefix does not exist yet: its ancestor tells');
  assert.equal(await databaseJournal(l), undefined);
  const fresh = await chooseJournal(l);
  assert.deepEqual(fresh, { journal: journalFor(fsType), fsType, by: 'filesystem' });

  await fs.mkdir(path.dirname(databaseFile(l)), { recursive: true });
  await fs.writeFile(databaseFile(l), '');
  assert.deepEqual(await chooseJournal(l), fresh, 'an empty database file holds nothing: the filesystem decides');

  await fs.writeFile(databaseFile(l), header(1, 4096));
  const wal: JournalRecord = { journal: 'wal', fsType: 'ext4', by: 'filesystem' };
  assert.deepEqual(await chooseJournal(l, wal), { journal: 'rollback', fsType, by: 'database' }, 'a record that contradicts the database loses');
  assert.deepEqual(await chooseJournal(l), { journal: 'rollback', fsType, by: 'database' }, 'a prefix with no record keeps its database');
  const off: JournalRecord = { journal: 'rollback', fsType: 'nfs', by: 'filesystem' };
  assert.deepEqual(await chooseJournal(l, off), off, 'a record the database agrees with keeps its reason');

  await fs.writeFile(databaseFile(l), header(2, 4096));
  assert.deepEqual(await chooseJournal(l, off), { journal: 'wal', fsType, by: 'database' });
  assert.deepEqual(await chooseJournal(l, wal), wal);
});

test('the journal in words, with why', () => {
  assert.equal(journalWords({ journal: 'wal', fsType: 'ext4', by: 'filesystem' }), 'WAL journal (ext4)');
  assert.equal(
    journalWords({ journal: 'rollback', fsType: 'nfs', by: 'filesystem' }),
    'rollback journal (nfs: WAL needs shared memory and locks it may not give)',
  );
  assert.equal(journalWords({ journal: 'rollback', fsType: 'ext4', by: 'database' }), 'rollback journal (the database on disk was made with it, and keeps it)');
});

test("nix.conf's block names the journal, and a rewrite of its build hook keeps it", () => {
  for (const [journal, line] of [
    ['wal', 'use-sqlite-wal = true'],
    ['rollback', 'use-sqlite-wal = false'],
  ] as const) {
    const block = nixConfBlock({ caches: [], trustedKeys: [], journal });
    const wal = (text: string) => text.split('\n').filter((x) => x.startsWith('use-sqlite-wal'));
    assert.deepEqual(wal(block), [line]);
    const conf = `${block}use-sqlite-wal = true\n`;
    const hooked = withBuildHook(conf, '/p/hook');
    assert.match(hooked, /^build-hook = \/p\/hook$/m);
    assert.deepEqual(wal(hooked.slice(hooked.indexOf(BEGIN), hooked.indexOf(END))), [line]);
  }
});
