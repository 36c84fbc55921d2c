// NAR serialisation, nix-base32 and .reginfo checked against Debian's Nix (nix-store --dump,
// nix-hash, --dump-db), and what a NAR cannot represent.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dumpPath, formatNarHash, narDigest } from '../../src/store/nar/write.ts';
import { fromNixBase32, isNixBase32, toNixBase32 } from '../../src/store/nixbase32.ts';
import { formatNarHashLike, formatRegInfo, parseNarHashField, parseRegInfo } from '../../src/store/reginfo.ts';
import { isKind } from '../../src/util/errors.ts';
import { requireTool } from '../helpers/tools.ts';

async function sampleTree(): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-nar-'));
  const t = path.join(root, 'tree');
  await fs.mkdir(path.join(t, 'sub', 'deeper'), { recursive: true });
  await fs.writeFile(path.join(t, 'a'), 'hello\n');
  await fs.writeFile(path.join(t, 'empty'), '');
  await fs.writeFile(path.join(t, 'sub', 'exe'), randomBytes(3000), { mode: 0o755 });
  await fs.writeFile(path.join(t, 'sub', 'deeper', 'eight'), '12345678');
  await fs.writeFile(path.join(t, 'B-upper'), 'sorted before lowercase');
  await fs.writeFile(path.join(t, 'big'), randomBytes((1 << 20) + 13)); // exercises the streamed branch
  await fs.symlink('../a', path.join(t, 'sub', 'link'));
  await fs.symlink('/nix/store/some-absolute-target', path.join(t, 'abs'));
  return t;
}

test('nix-base32 matches nix-hash --to-base32 and round-trips', () => {
  requireTool('nix-hash');
  for (let i = 0; i < 20; i++) {
    const bytes = randomBytes(32);
    const ours = toNixBase32(bytes);
    const theirs = execFileSync('nix-hash', ['--type', 'sha256', '--to-base32', bytes.toString('hex')])
      .toString()
      .trim();
    assert.equal(ours, theirs);
    assert.ok(fromNixBase32(ours).equals(bytes));
  }
  const twenty = randomBytes(20);
  assert.equal(toNixBase32(twenty).length, 32);
  assert.ok(fromNixBase32(toNixBase32(twenty), 20).equals(twenty));
  assert.throws(() => fromNixBase32('e'.repeat(52), 32), /invalid character "e"/);
  assert.throws(() => fromNixBase32('abc', 32), /length 3, expected 52/);
  assert.equal(isNixBase32('0123456789abcdfghijklmnpqrsvwxyz'), true);
  assert.equal(isNixBase32('hello-tuo'), false);
});

test('NAR serialisation is byte-identical to nix-store --dump', async () => {
  requireTool('nix-store');
  const t = await sampleTree();
  try {
    const chunks: Buffer[] = [];
    for await (const c of dumpPath(t)) chunks.push(c);
    const ours = Buffer.concat(chunks);
    const theirs = execFileSync('nix-store', ['--dump', t], { maxBuffer: 64 << 20 });
    assert.equal(ours.length, theirs.length);
    assert.ok(ours.equals(theirs), 'NAR bytes differ from nix-store --dump');
    const d = await narDigest(t);
    assert.equal(d.size, theirs.length);
    assert.equal(d.hash.toString('hex'), createHash('sha256').update(theirs).digest('hex'));
    const nixHash = execFileSync('nix-hash', ['--type', 'sha256', '--base32', t]).toString().trim();
    assert.equal(formatNarHash(d.hash), `sha256:${nixHash}`);
    // a single file and a lone symlink are NARs too
    for (const leaf of ['a', 'sub/link', 'sub/exe']) {
      const p = path.join(t, leaf);
      const parts: Buffer[] = [];
      for await (const c of dumpPath(p)) parts.push(c);
      const one = Buffer.concat(parts);
      assert.ok(one.equals(execFileSync('nix-store', ['--dump', p])), `NAR of ${leaf} differs`);
    }
  } finally {
    await fs.rm(path.dirname(t), { recursive: true, force: true });
  }
});

test('NAR refuses what it cannot represent, naming the file', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-nar-'));
  try {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(
      narDigest(fifo),
      (e: unknown) => isKind(e, 'integrity') && e.message.startsWith(`${fifo} is neither a file, a directory nor a symlink`),
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('reginfo reads and re-writes exactly what nix-store --dump-db prints', async () => {
  requireTool('nix-store');
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-db-'));
  const env = {
    ...process.env,
    NIX_STORE_DIR: path.join(root, 'store'),
    NIX_STATE_DIR: path.join(root, 'var', 'nix'),
    NIX_LOG_DIR: path.join(root, 'var', 'log', 'nix'),
    NIX_CONF_DIR: path.join(root, 'etc'),
    NIX_CONFIG: 'sandbox = false\nbuild-users-group =',
  };
  try {
    const t = await sampleTree();
    const added = execFileSync('nix-store', ['--add', t], { env }).toString().trim();
    const dumped = execFileSync('nix-store', ['--dump-db'], { env }).toString();
    const recs = parseRegInfo(dumped);
    const rec = recs.find((r) => r.path === added);
    assert.ok(rec, `${added} missing from --dump-db`);
    assert.equal(formatRegInfo(recs), dumped);
    const d = await narDigest(added);
    // --dump-db writes bare hex; narinfo-style fields carry nix-base32
    assert.ok(parseNarHashField(rec.narHash).equals(d.hash));
    assert.equal(formatNarHashLike(d.hash, rec.narHash), rec.narHash);
    assert.ok(parseNarHashField(formatNarHash(d.hash)).equals(d.hash));
    assert.equal(rec.narSize, d.size);
    await fs.rm(path.dirname(t), { recursive: true, force: true });
  } finally {
    execFileSync('chmod', ['-R', 'u+w', root]);
    await fs.rm(root, { recursive: true, force: true });
  }
});
