// Locks between holders in one process, and atomic writes that fail leaving the old content.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { RelonixError } from '../../src/util/errors.ts';
import { writeFileAtomic } from '../../src/util/fs.ts';
import { withLock } from '../../src/util/lock.ts';

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'relonix-lock-'));
}

test('a second holder is refused as busy naming the owner, or waits its turn', async () => {
  const dir = await tmp();
  const lock = path.join(dir, 'lock');
  const order: string[] = [];
  let release!: () => void;
  const first = withLock(lock, { what: 'first' }, async () => {
    order.push('first-in');
    await new Promise<void>((r) => (release = r));
    order.push('first-out');
  });
  while (order.length === 0) await new Promise((r) => setTimeout(r, 5));
  await assert.rejects(
    withLock(lock, { what: 'second' }, async () => {}),
    (e: unknown) => {
      assert.ok(e instanceof RelonixError);
      assert.equal(e.kind, 'busy');
      assert.match(e.message, new RegExp(`pid ${process.pid}, first`));
      assert.match(e.hint ?? '', /--wait/);
      return true;
    },
  );
  let waited = false;
  const third = withLock(lock, { what: 'third', waitMs: 5000, onWait: () => (waited = true) }, async () => {
    order.push('third-in');
  });
  setTimeout(() => release(), 100);
  await Promise.all([first, third]);
  assert.deepEqual(order, ['first-in', 'first-out', 'third-in']);
  assert.equal(waited, true);
  await assert.rejects(fs.stat(lock), /ENOENT/);
  await fs.rm(dir, { recursive: true });
});

test('atomic writes leave the old content when the write fails, and no temp file', async () => {
  const dir = await tmp();
  const target = path.join(dir, 'f');
  await writeFileAtomic(target, 'old');
  // a rename onto a non-empty directory fails for root too, after the temp file was written
  const blocker = path.join(dir, 'd');
  await fs.mkdir(blocker);
  await fs.writeFile(path.join(blocker, 'keep'), 'kept');
  await assert.rejects(writeFileAtomic(blocker, 'new'), /EISDIR|ENOTEMPTY|EEXIST/);
  assert.equal(await fs.readFile(path.join(blocker, 'keep'), 'utf8'), 'kept');
  assert.deepEqual((await fs.readdir(dir)).sort(), ['d', 'f']);
  await fs.rm(blocker, { recursive: true });
  await writeFileAtomic(target, 'new', 0o600);
  assert.equal(await fs.readFile(target, 'utf8'), 'new');
  assert.equal((await fs.stat(target)).mode & 0o777, 0o600);
  assert.deepEqual(await fs.readdir(dir), ['f']);
  await fs.rm(dir, { recursive: true });
});
