// Which host program relonix takes for xz and zstd: the first on PATH that is a file it may run, and
// never busybox's applet (its xz only decodes, and refuses the options a bootstrap passes).
import assert from 'node:assert/strict';
import { existsSync, promises as fs, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { hostTool } from '../../src/codec/host-tools.ts';
import { encoderFailure, probeHostDecoder } from '../../src/codec/probe.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'relonix-host-tools-'));
after(() => fs.rm(dir, { recursive: true, force: true }));

/** hostTool(name) with PATH set to `dirs`. */
function withPath(dirs: string[], name: 'xz' | 'zstd'): string | null {
  const saved = process.env.PATH;
  process.env.PATH = dirs.join(':');
  try {
    return hostTool(name);
  } finally {
    process.env.PATH = saved;
  }
}

test("busybox's xz applet is passed over for a real xz later on PATH, and is no xz on its own", async () => {
  const bb = path.join(dir, 'busybox-bin');
  const real = path.join(dir, 'real-bin');
  const plain = path.join(dir, 'plain-bin');
  for (const d of [bb, real, plain]) await fs.mkdir(d);
  await fs.writeFile(path.join(bb, 'busybox'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await fs.symlink('busybox', path.join(bb, 'xz'));
  await fs.writeFile(path.join(real, 'xz'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await fs.writeFile(path.join(plain, 'zstd'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  assert.equal(withPath([bb, real], 'xz'), path.join(real, 'xz'));
  assert.equal(withPath([bb], 'xz'), null);
  assert.equal(withPath([real, bb], 'xz'), path.join(real, 'xz'));
  // a symlink to a program of another name is that program
  await fs.symlink(path.join(real, 'xz'), path.join(plain, 'xz'));
  assert.equal(withPath([plain], 'xz'), path.join(plain, 'xz'));
  assert.equal(withPath([bb, plain], 'zstd'), path.join(plain, 'zstd'));
  // not executable, or a directory: not a program
  await fs.chmod(path.join(real, 'xz'), 0o644);
  await fs.mkdir(path.join(dir, 'dir-bin', 'xz'), { recursive: true });
  assert.equal(withPath([path.join(dir, 'dir-bin'), real], 'xz'), null);
  assert.equal(withPath([path.join(dir, 'dir-bin')], 'xz'), null);
});

/** Whether process `pid` has ended (a zombie has: only its exit status is left). */
function ended(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), what);
}

// by its path: the probes below run with PATH set to the fake programs' dir alone
const SLEEP = ['/usr/bin/sleep', '/bin/sleep'].find((p) => existsSync(p)) ?? assert.fail('this test needs sleep in /usr/bin or /bin');

test('a host compressor that hangs over the sample is a failure, said with how long it was given, and is killed', async () => {
  const bin = path.join(dir, 'hangs-bin');
  await fs.mkdir(bin);
  const pids = path.join(dir, 'hangs.pid');
  await fs.writeFile(path.join(bin, 'zstd'), `#!/bin/sh\necho $$ > '${pids}'\nexec ${SLEEP} 600\n`, { mode: 0o755 });
  const why = await encoderFailure('zstd', path.join(bin, 'zstd'), 19, 300);
  assert.match(why ?? '', /^it did not finish compressing \d+ bytes within 0\.3 s$/);
  const pid = Number(await fs.readFile(pids, 'utf8'));
  await until(`the hanging zstd (pid ${pid}) was killed`, () => ended(pid));
  // relonix doctor's decoding sample, likewise
  const saved = process.env.PATH;
  process.env.PATH = bin;
  const decoding = await probeHostDecoder('zstd', 300).finally(() => (process.env.PATH = saved));
  assert.deepEqual(decoding, {
    program: path.join(bin, 'zstd'),
    hidden: false,
    works: false,
    printed: 'it did not finish decoding the sample within 0.3 s',
  });
  const decoder = Number(await fs.readFile(pids, 'utf8'));
  assert.notEqual(decoder, pid);
  await until(`the hanging decoder (pid ${decoder}) was killed`, () => ended(decoder));

  // a wrapper whose own child hangs, holding the output after the wrapper is killed: not waited for
  await fs.writeFile(path.join(bin, 'xz'), `#!/bin/sh\n${SLEEP} 60 &\necho $! > '${pids}'\nwait\n`, { mode: 0o755 });
  const started = Date.now();
  const wrapped = await encoderFailure('xz', path.join(bin, 'xz'), 9, 300);
  assert.match(wrapped ?? '', /within 0\.3 s$/);
  assert.ok(Date.now() - started < 30_000, 'the sample ended well before the wrapper’s child (60 s)');
  process.kill(Number(await fs.readFile(pids, 'utf8')), 'SIGKILL');
});
