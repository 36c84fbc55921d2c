// The post-build hook as Nix runs it: a real sh, its queue line, its signals and exit status.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { hookScript, writeHook } from '../../src/build/hook.ts';
import { queueFiles, readQueue } from '../../src/build/queue.ts';
import { layout } from '../../src/prefix/layout.ts';

const drv = (n: string) => `/tmp/p/store/${n.padEnd(32, '0')}-${n}.drv`;

async function tempPrefix(): Promise<string> {
  return path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-hook-')), 'nix');
}

test('the hook appends $DRV_PATH, ignores TERM, always exits 0, and runs the user hook after', async () => {
  const l = layout(await tempPrefix());
  const q = queueFiles(l);
  const hook = await writeHook(q);
  const run = (file: string, env: Record<string, string>) => spawnSync('/bin/sh', [file], { env: { PATH: '/usr/bin:/bin', ...env }, encoding: 'utf8' });
  assert.equal(run(hook, { DRV_PATH: drv('a'), OUT_PATHS: '' }).status, 0);
  assert.deepEqual((await readQueue(q)).pending, [drv('a')]);
  // the hook cannot write (its directory is gone): it still succeeds, so Nix goes on building
  await fs.rm(q.dir, { recursive: true });
  await fs.mkdir(path.dirname(q.dir), { recursive: true });
  await fs.writeFile(path.join(path.dirname(q.dir), 'hook.sh'), hookScript(q.queue));
  assert.equal(run(path.join(path.dirname(q.dir), 'hook.sh'), { DRV_PATH: drv('b') }).status, 0);
  // a TERM sent to the hook's process group while it runs does not stop it half-way
  const slow = hookScript(q.queue).replace("printf '%s\\n'", "kill -TERM $$; printf '%s\\n'");
  await fs.mkdir(q.dir, { recursive: true });
  await fs.writeFile(path.join(q.dir, 'slow.sh'), slow);
  assert.equal(run(path.join(q.dir, 'slow.sh'), { DRV_PATH: drv('c') }).status, 0);
  assert.deepEqual((await readQueue(q)).pending, [drv('c')]);
  // the user's own hook runs next, with the same environment, and its status is theirs
  const mine = path.join(q.dir, 'mine.sh');
  await fs.writeFile(mine, '#!/bin/sh\necho "mine $DRV_PATH"\nexit 3\n', { mode: 0o755 });
  await writeHook(q, mine);
  const r = run(q.hook, { DRV_PATH: drv('d') });
  assert.equal(r.stdout, `mine ${drv('d')}\n`);
  assert.equal(r.status, 3);
  assert.deepEqual((await readQueue(q)).pending, [drv('c'), drv('d')]);
  assert.match(execFileSync('sh', ['-n', q.hook], { encoding: 'utf8' }), /^$/, 'the hook is valid sh');
  await fs.rm(path.dirname(l.prefix), { recursive: true });
});
