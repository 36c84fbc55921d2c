// `relonix patchelf --output` into something that is not a regular file: a character device (a
// node like /dev/null, and /dev/null itself) or a FIFO is written into, as patchelf does, and keeps
// its type, mode and owner, even when root runs the command. A regular output gets the input's
// mode; a symlink is written through, not replaced.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { editElf } from '../../src/elf/index.ts';
import { NOBODY_UID, relonixPatchelf } from '../helpers/cli.ts';
import { readelf } from '../helpers/elf.ts';
import { RELONIX } from '../helpers/paths.ts';
import { requireRoot, requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-output-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const RPATH = `/an/rpath/${'o'.repeat(120)}/lib`;

function input(): string {
  const f = path.join(tmp, `in-${Math.random().toString(36).slice(2)}`);
  copyFileSync('/usr/bin/true', f);
  chmodSync(f, 0o755);
  return f;
}

function identity(st: Stats): { kind: string; mode: number; uid: number; gid: number; rdev: number; ino: number } {
  const kind = st.isCharacterDevice() ? 'char' : st.isFIFO() ? 'fifo' : st.isFile() ? 'file' : 'other';
  return { kind, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, rdev: st.rdev, ino: st.ino };
}

test('a character device keeps its type, mode and owner when it is the output (as root)', () => {
  requireRoot('only root makes device nodes and could chmod one by mistake');
  requireTool('mknod', 'coreutils');
  const node = path.join(tmp, 'null');
  assert.equal(run('mknod', ['-m', '0620', node, 'c', '1', '3']).status, 0);
  chownSync(node, NOBODY_UID, NOBODY_UID);
  const before = identity(lstatSync(node));
  const r = relonixPatchelf(['--set-rpath', RPATH, '--output', node, input()]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(identity(lstatSync(node)), before);
});

test('/dev/null itself is written into and left as it was (as root)', () => {
  requireRoot('/dev/null is root-owned; the old writer chmod-ed it to the input mode');
  const before = lstatSync('/dev/null');
  try {
    const r = relonixPatchelf(['--set-rpath', RPATH, '--output', '/dev/null', input()]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(identity(lstatSync('/dev/null')), identity(before));
  } finally {
    // Never leave the machine with a broken /dev/null, whatever the outcome.
    const now = lstatSync('/dev/null');
    if ((now.mode & 0o7777) !== (before.mode & 0o7777)) chmodSync('/dev/null', before.mode & 0o7777);
    if (now.uid !== before.uid || now.gid !== before.gid) chownSync('/dev/null', before.uid, before.gid);
  }
});

test('a FIFO receives the edited file, read from its other end, and keeps its type, mode and owner (as root)', async () => {
  requireRoot('the owner of the FIFO is another uid');
  requireTool('mkfifo', 'coreutils');
  const fifo = path.join(tmp, 'fifo');
  assert.equal(run('mkfifo', ['-m', '0600', fifo]).status, 0);
  chownSync(fifo, NOBODY_UID, NOBODY_UID);
  const before = identity(lstatSync(fifo));
  const src = input();
  const got = path.join(tmp, 'from-fifo');
  const reader = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', fifo, got], { stdio: 'ignore' });
  const done = new Promise<number | null>((resolve) => reader.on('exit', resolve));
  const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [RELONIX, 'patchelf', '--set-rpath', RPATH, '--output', fifo, src]);
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    p.on('exit', (status) => resolve({ status, stderr }));
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(await done, 0);
  assert.deepEqual(identity(lstatSync(fifo)), before);
  assert.ok(readFileSync(got).equals(editElf(readFileSync(src), { rpath: RPATH })!), 'the reader got exactly the edited file');
});

test('a regular output gets the input mode; a symlinked output is written through and stays a link', () => {
  requireTool('readelf');
  const src = input();
  chmodSync(src, 0o750);
  const target = path.join(tmp, 'target');
  writeFileSync(target, 'old content\n');
  chmodSync(target, 0o600);
  const link = path.join(tmp, 'link');
  symlinkSync(target, link);
  const r = relonixPatchelf(['--set-rpath', RPATH, '--output', link, src]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readlinkSync(link), target);
  assert.equal(statSync(target).mode & 0o777, 0o750);
  assert.equal(readelf(target).view.runpath, RPATH);
});

test('an output that cannot be opened fails as patchelf fails, and the input stays as it was', () => {
  requireTool('patchelf');
  const src = input();
  const before = readFileSync(src);
  for (const out of [tmp, path.join(tmp, 'no-such-dir', 'out')]) {
    const ours = relonixPatchelf(['--set-rpath', RPATH, '--output', out, src]);
    const theirs = run('patchelf', ['--set-rpath', RPATH, '--output', out, src]);
    assert.equal(ours.status, theirs.status, out);
    assert.equal(ours.stderr, theirs.stderr, out);
    assert.equal(ours.stdout, theirs.stdout, out);
  }
  assert.ok(readFileSync(src).equals(before));
});
