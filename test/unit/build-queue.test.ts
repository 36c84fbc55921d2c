// The durable queue (appends, pending = queue − done, torn lines, compaction), the nix-build
// arguments, and the reading of nix-build's log (the hook as sh runs it: integration/build-hook).

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { NixLogReader, nixBuildArgs } from '../../src/build/nix-build.ts';
import { appendLines, compactQueue, parseEntries, QueueTail, queueFiles, queueStatus, readQueue } from '../../src/build/queue.ts';
import { userSettings } from '../../src/host/parallelism.ts';
import { layout } from '../../src/prefix/layout.ts';

const drv = (n: string) => `/tmp/p/store/${n.padEnd(32, '0')}-${n}.drv`;

async function tempPrefix(): Promise<string> {
  return path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-queue-')), 'nix');
}

test('queue: pending is what was queued and is not done, once each, in order; a torn last line waits', async () => {
  const l = layout(await tempPrefix());
  const q = queueFiles(l);
  await appendLines(q.queue, [drv('a'), drv('b'), drv('a')]);
  await fs.appendFile(q.queue, `${drv('c')}\nnot a derivation\n/tmp/p/store/half`);
  await appendLines(q.done, [drv('b')]);
  const s = await readQueue(q);
  assert.deepEqual(s.pending, [drv('a'), drv('c')]);
  assert.deepEqual([...s.done], [drv('b')]);
  assert.deepEqual((await queueStatus(l)).pending, [drv('a'), drv('c')]);
  assert.deepEqual(parseEntries(`${drv('x')}\n/tmp/p/store/y`), { entries: [drv('x')], rest: '/tmp/p/store/y' });
  await fs.rm(path.dirname(l.prefix), { recursive: true });
});

test('queue: compaction waits for every entry to be done, and keeps a line appended while it runs', async () => {
  const l = layout(await tempPrefix());
  const q = queueFiles(l);
  await appendLines(q.queue, [drv('a'), drv('b')]);
  await appendLines(q.done, [drv('a')]);
  await compactQueue(q);
  assert.deepEqual((await readQueue(q)).pending, [drv('b')], 'nothing is compacted while something is pending');
  await appendLines(q.done, [drv('b')]);
  await compactQueue(q);
  await assert.rejects(fs.stat(q.queue), /ENOENT/, 'both files start afresh');
  await assert.rejects(fs.stat(q.done), /ENOENT/);
  // a kill between setting the queue aside and finishing: the set-aside queue still counts
  await appendLines(`${q.queue}.compacting`, [drv('late')]);
  assert.deepEqual((await readQueue(q)).pending, [drv('late')]);
  await compactQueue(q);
  assert.deepEqual((await readQueue(q)).pending, [drv('late')], 'an entry that was not done survives compaction');
  await fs.rm(path.dirname(l.prefix), { recursive: true });
});

test('queue tail: each call returns the entries appended since, and a compacted (shorter) file is read afresh', async () => {
  const l = layout(await tempPrefix());
  const q = queueFiles(l);
  await appendLines(q.queue, [drv('old')]);
  const tail = new QueueTail(q.queue);
  await tail.skipExisting();
  assert.deepEqual(await tail.next(), []);
  await fs.appendFile(q.queue, `${drv('a')}\n${drv('b').slice(0, 20)}`);
  assert.deepEqual(await tail.next(), [drv('a')]);
  await fs.appendFile(q.queue, `${drv('b').slice(20)}\n`);
  assert.deepEqual(await tail.next(), [drv('b')], 'a line written in two pieces is read once whole');
  await fs.writeFile(q.queue, `${drv('c')}\n`);
  assert.deepEqual(await tail.next(), [drv('c')]);
  await fs.rm(path.dirname(l.prefix), { recursive: true });
});

test("nix-build arguments: relonix's settings, the user's winning where they set them, the cache added after theirs", () => {
  const base = { hook: '/p/hook', cache: 'file:///c', publicKeys: ['k-1:AAAA', 'o-1:BBBB'], parallelism: { cores: 2, maxJobs: 3 } };
  const plain = nixBuildArgs({ ...base, user: userSettings(['-A', 'x', 'f.nix']) });
  assert.deepEqual(plain, [
    '--option',
    'narinfo-cache-negative-ttl',
    '0',
    '--max-jobs',
    '3',
    '--cores',
    '2',
    '-A',
    'x',
    'f.nix',
    '--option',
    'post-build-hook',
    '/p/hook',
    '--option',
    'extra-substituters',
    'file:///c',
    '--option',
    'extra-trusted-public-keys',
    'k-1:AAAA o-1:BBBB',
    '--option',
    'compress-build-log',
    'false',
  ]);
  const theirs = nixBuildArgs({ ...base, user: userSettings(['-j', '7', '--option', 'cores', '1', 'f.nix']) });
  assert.ok(!theirs.includes('--max-jobs') && !theirs.includes('--cores'), theirs.join(' '));
  assert.deepEqual(theirs.slice(3, 9), ['-j', '7', '--option', 'cores', '1', 'f.nix']);
});

test("nix-build's log: the plan (derivations to build, paths to fetch), each build starting, succeeding, failing", () => {
  const r = new NixLogReader();
  const events = [
    'these 2 derivations will be built:',
    `  ${drv('a')}`,
    `  ${drv('b')}`,
    'these 3 paths will be fetched (0.01 MiB download, 0.05 MiB unpacked):',
    '  /tmp/p/store/x',
    '  /tmp/p/store/y',
    '  /tmp/p/store/z',
    "copying path '/tmp/p/store/x' from 'file:///c'...",
    `building '${drv('a')}'...`,
    'some build output',
    "running post-build-hook '/p/var/relonix/build/post-build-hook'...",
    `\x1b[31;1merror:\x1b[0m builder for '${drv('b')}' failed with exit code 3`,
  ].flatMap((line) => r.line(line));
  assert.deepEqual(events, [
    { kind: 'plan', drvs: [drv('a'), drv('b')], fetch: 3 },
    { kind: 'start', drv: drv('a') },
    { kind: 'finish' },
    { kind: 'fail', drv: drv('b') },
  ]);
  const one = new NixLogReader();
  assert.deepEqual(
    ['this derivation will be built:', `  ${drv('c')}`].flatMap((x) => one.line(x)),
    [],
  );
  assert.deepEqual(one.end(), [{ kind: 'plan', drvs: [drv('c')], fetch: 0 }], 'a plan with nothing after it comes out at the end');
  assert.deepEqual(one.end(), [], 'once');
});
