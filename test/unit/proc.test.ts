// Process liveness as locks judge it: /proc/PID/stat parsed from its last ')', zombies and reused
// pids counted as gone, and a lock whose recorded owner is not the process now holding its pid taken over.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { RelonixError } from '../../src/util/errors.ts';
import { withLock } from '../../src/util/lock.ts';
import { judgeAlive, parseProcStat, readProcStat } from '../../src/util/proc.ts';

/** A stat line as the kernel writes it: pid, (comm), state, then fields 4 to 52, field 22 the start time. */
function statLine(pid: number, comm: string, state: string, start: number): string {
  const fields = Array.from({ length: 52 - 3 }, (_, i) => String(i + 4));
  fields[22 - 4] = String(start);
  return `${pid} (${comm}) ${state} ${fields.join(' ')}\n`;
}

test('proc stat: state, parent and start time are read after the last parenthesis, whatever the command name holds', () => {
  assert.deepEqual(parseProcStat(statLine(42, 'node', 'S', 123456)), { state: 'S', ppid: 4, startTime: '123456' });
  // a name with spaces and parentheses, even one that looks like the fields that follow
  assert.deepEqual(parseProcStat(statLine(7, 'a) Z 1 2 (b', 'R', 99)), { state: 'R', ppid: 4, startTime: '99' });
  assert.deepEqual(parseProcStat(statLine(7, ') S (', 'Z', 5)), { state: 'Z', ppid: 4, startTime: '5' });
  assert.deepEqual(parseProcStat(statLine(7, 'relonix bootstrap', 'X', 8)), { state: 'X', ppid: 4, startTime: '8' });
  assert.equal(parseProcStat('12 (cut short) S 1 2'), undefined);
  assert.equal(parseProcStat('no parentheses at all'), undefined);
  assert.equal(parseProcStat(''), undefined);
});

test('proc stat: this process reads as running, with the start time its own stat file gives', async () => {
  const mine = readProcStat(process.pid);
  assert.ok(mine, '/proc/self/stat is readable');
  assert.match(mine.state, /^[RS]$/);
  const raw = await fs.readFile('/proc/self/stat', 'latin1');
  assert.equal(mine.startTime, raw.slice(raw.lastIndexOf(')') + 2).split(' ')[19]);
});

test('liveness: zombies and dead processes are gone, another start time is another process, no /proc asks kill(0)', () => {
  const never = () => assert.fail('kill(pid, 0) must not decide when /proc answers');
  assert.equal(judgeAlive({ state: 'S', startTime: '10' }, '10', never), true);
  assert.equal(judgeAlive({ state: 'R', startTime: '10' }, undefined, never), true, 'a lock without a start time trusts the pid');
  assert.equal(judgeAlive({ state: 'Z', startTime: '10' }, '10', never), false);
  assert.equal(judgeAlive({ state: 'X', startTime: '10' }, '10', never), false);
  assert.equal(judgeAlive({ state: 'S', startTime: '11' }, '10', never), false, 'a reused pid');
  assert.equal(
    judgeAlive(undefined, '10', () => true),
    true,
  );
  assert.equal(
    judgeAlive(undefined, '10', () => false),
    false,
  );
});

test('lock: a lock naming a live pid with another start time is taken over; with its own it is busy', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-proc-'));
  try {
    const lock = path.join(dir, 'lock');
    const start = readProcStat(process.pid)!.startTime;
    // this very process, as another process that had its pid long ago would have recorded it
    await fs.writeFile(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), since: 'then', what: 'reused', start: String(Number(start) + 1) }));
    assert.equal(await withLock(lock, { what: 'after' }, async () => 'ran'), 'ran');
    await assert.rejects(fs.stat(lock), /ENOENT/);
    await fs.writeFile(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), since: 'now', what: 'holder', start }));
    await assert.rejects(
      withLock(lock, { what: 'second' }, async () => 'ran'),
      (e: unknown) => e instanceof RelonixError && e.kind === 'busy' && /holder/.test(e.message),
    );
    // torn by a crash: unreadable, and older than a moment, so not one being written right now
    await fs.writeFile(lock, '{"pid": 12');
    const past = new Date(Date.now() - 5000);
    await fs.utimes(lock, past, past);
    assert.equal(await withLock(lock, { what: 'after a torn lock' }, async () => 'ran'), 'ran');
    assert.deepEqual(await fs.readdir(dir), [], 'no lock and no temporary is left');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
