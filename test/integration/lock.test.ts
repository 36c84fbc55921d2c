// A lock whose holder was killed is taken over: the holder is a real process, killed with SIGKILL.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { withLock } from '../../src/util/lock.ts';

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'relonix-lock-'));
}

test('a lock left by a killed process is taken over', async () => {
  const dir = await tmp();
  const lock = path.join(dir, 'lock');
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  await new Promise((r) => child.once('spawn', r));
  await fs.writeFile(lock, JSON.stringify({ pid: child.pid, host: os.hostname(), since: 'then', what: 'killed' }));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const got = await withLock(lock, { what: 'after' }, async () => 'ran');
  assert.equal(got, 'ran');
  await fs.rm(dir, { recursive: true });
});
