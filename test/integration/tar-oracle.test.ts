// The tar reader against GNU tar: archives GNU tar writes in each of its formats (gnu, posix, ustar,
// v7), of a tree with long names, symlinks, hard links, empty and big files and odd modes, read
// entry for entry as GNU tar lists them and as it extracts them.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { removeTree } from '../../src/util/fs.ts';
import { readTar } from '../helpers/tar.ts';
import { requireTool, run } from '../helpers/tools.ts';

let tmp: string;

before(async () => {
  requireTool('tar');
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-tar-oracle-'));
});
after(async () => {
  if (tmp) await removeTree(tmp);
});

type Format = 'gnu' | 'posix' | 'ustar' | 'v7';

/**
 * The tree to archive, with what each format can hold: ustar names up to 255 bytes (split at a
 * slash) and link targets up to 100, v7 names and targets up to 99; gnu and posix anything.
 */
async function makeTree(root: string, format: Format): Promise<void> {
  const top = path.join(root, 'top');
  const long = format === 'gnu' || format === 'posix';
  const put = async (rel: string, body: string | Buffer, mode: number) => {
    const p = path.join(top, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, body);
    await fs.chmod(p, mode);
  };
  await put('empty', '', 0o644);
  await put('script', '#!/bin/sh\necho hi\n', 0o755);
  await put('read-only', 'r', 0o444);
  await put('setuid', 'suid', 0o4755);
  await put('exactly-512', 'x'.repeat(512), 0o600);
  await put('big', randomBytes(3 << 20), 0o644);
  await put('café-日本', 'utf-8 name\n', 0o644);
  await fs.link(path.join(top, 'script'), path.join(top, 'script-hardlink'));
  await fs.symlink('script', path.join(top, 'rel-link'));
  await fs.symlink('/nix/store/00000000000000000000000000000000-x/bin/sh', path.join(top, 'abs-link'));
  await fs.mkdir(path.join(top, 'private'), { mode: 0o700 });
  await fs.chmod(path.join(top, 'private'), 0o700);
  await fs.mkdir(path.join(top, 'sticky'));
  await fs.chmod(path.join(top, 'sticky'), 0o1777);
  if (format === 'v7') {
    await put(`${'v'.repeat(40)}/${'w'.repeat(40)}`, 'under 99 bytes', 0o644);
    return;
  }
  // over 100 bytes, split at a slash into ustar's prefix and name
  const split = `${'directory-'.repeat(9)}d/${'file-'.repeat(10)}f`;
  await put(split, 'split name', 0o644);
  if (!long) return;
  // over 255 bytes, and a single component over 100
  const deep = `${'deep-directory-name-'.repeat(5)}a/${'deep-directory-name-'.repeat(5)}b/${'n'.repeat(150)}`;
  await put(deep, 'deep', 0o640);
  await fs.symlink(`../${'t'.repeat(200)}/target`, path.join(top, 'long-link'));
  await fs.link(path.join(top, deep), path.join(top, `hard-${'h'.repeat(120)}`));
}

interface Seen {
  path: string;
  type: string;
  mode: number;
  size: number;
  linkpath?: string;
  sha256: string;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

for (const format of ['gnu', 'posix', 'ustar', 'v7'] as const) {
  test(`tar reader: GNU tar's ${format} format reads as GNU tar lists and extracts it`, async () => {
    const root = path.join(tmp, format);
    await makeTree(root, format);
    const archive = path.join(root, 'a.tar');
    const made = run('tar', [`--format=${format}`, '--sort=name', '-cf', archive, '-C', root, 'top']);
    assert.equal(made.status, 0, made.stderr);
    const data = readFileSync(archive);

    const entries: Seen[] = readTar(data, 65_536).map((e) => ({
      path: e.path,
      type: e.type,
      mode: e.mode ?? -1,
      size: e.size,
      linkpath: e.linkpath,
      sha256: sha256(e.body),
    }));
    // in any chunking, the same
    for (const chunk of [1000, 511, 0]) {
      assert.deepEqual(
        readTar(data, chunk).map((e) => [e.path, e.type, e.size, e.linkpath, sha256(e.body)]),
        entries.map((e) => [e.path, e.type, e.size, e.linkpath, e.sha256]),
        `chunks of ${chunk}`,
      );
    }

    // the names, in order, as GNU tar lists them
    const listed = run('tar', ['-tf', archive, '--quoting-style=literal']);
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(
      entries.map((e) => e.path),
      listed.stdout.split('\n').filter(Boolean),
    );

    // each entry as GNU tar extracts it
    const out = path.join(root, 'out');
    await fs.mkdir(out);
    const extracted = run('tar', ['-xpf', archive, '-C', out]);
    assert.equal(extracted.status, 0, extracted.stderr);
    const seen = new Set<string>();
    for (const e of entries) {
      const p = path.join(out, e.path);
      const st = lstatSync(p);
      const what = `${format}: ${e.path}`;
      seen.add(path.normalize(e.path).replace(/\/$/, ''));
      if (e.type === 'Directory') {
        assert.ok(st.isDirectory(), what);
        assert.equal(e.mode, st.mode & 0o7777, what);
      } else if (e.type === 'SymbolicLink') {
        assert.ok(st.isSymbolicLink(), what);
        assert.equal(e.linkpath, readlinkSync(p), what);
        assert.equal(e.size, 0, what);
      } else if (e.type === 'Link') {
        assert.ok(e.linkpath, what);
        assert.equal(st.ino, lstatSync(path.join(out, e.linkpath!)).ino, `${what} shares its file with ${e.linkpath}`);
        assert.equal(e.size, 0, what);
      } else {
        assert.ok(st.isFile(), what);
        assert.ok(['File', 'OldFile'].includes(e.type), `${what}: ${e.type}`);
        assert.equal(e.mode, st.mode & 0o7777, what);
        assert.equal(e.size, st.size, what);
        assert.equal(e.sha256, sha256(readFileSync(p)), what);
      }
    }
    // and nothing GNU tar extracted that the reader did not see
    const walk = async (dir: string, rel: string): Promise<string[]> => {
      const names: string[] = [];
      for (const d of await fs.readdir(dir, { withFileTypes: true })) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        names.push(r);
        if (d.isDirectory()) names.push(...(await walk(path.join(dir, d.name), r)));
      }
      return names;
    };
    assert.deepEqual((await walk(out, '')).sort(), [...seen].sort());

    const byPath = new Map(entries.map((e) => [e.path, e]));
    assert.equal(byPath.get('top/big')!.size, 3 << 20);
    assert.equal(byPath.get('top/setuid')!.mode, 0o4755);
    assert.equal(byPath.get('top/sticky/')!.mode, 0o1777);
    assert.equal(byPath.get('top/café-日本')!.sha256, sha256(Buffer.from('utf-8 name\n')));
    if (format === 'gnu' || format === 'posix') {
      assert.ok(
        entries.some((e) => Buffer.byteLength(e.path) > 255),
        'a name over 255 bytes',
      );
      assert.ok(
        entries.some((e) => (e.linkpath?.length ?? 0) > 100 && e.type === 'SymbolicLink'),
        'a link target over 100 bytes',
      );
    }
  });
}
