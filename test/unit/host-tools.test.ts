// Which host program relonix takes for xz and zstd: the first on PATH that is a file it may run, and
// never busybox's applet (its xz only decodes, and refuses the options a bootstrap passes).
import assert from 'node:assert/strict';
import { promises as fs, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { hostTool } from '../../src/codec/host-tools.ts';

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
