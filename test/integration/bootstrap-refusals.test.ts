// What a careless user or a hostile server hands bootstrap: prefixes Nix cannot live at, directories
// full of other files, paths the system refuses, tarballs that are no file or never end, a disk that
// fills mid-download. Each is refused before harm, in a sentence with the fix and the exit code of
// the contract, and a full disk is a pause: the same command continues once space is free.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Fixture } from '../../src/demo/fixture.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { EXIT, events, NOBODY_UID, type RunResult, relonix } from '../helpers/cli.ts';
import { startServer } from '../helpers/http.ts';
import { removePrefix, tempDir } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

let top: string;
let fx: Fixture;
const ZEROS = '0'.repeat(64);

before(async () => {
  requireRoot('it mounts small and read-only filesystems and runs as uid 4242');
  for (const t of ['setpriv', 'fallocate']) requireTool(t, 'util-linux');
  top = tempDir('refusals');
  await fs.chmod(top, 0o755);
  fx = await ensureFixture();
});
after(async () => {
  if (top) await removePrefix(top);
});

/** stderr has the sentence and its fix, and no raw errno token or stack trace. */
function worded(r: RunResult, said: RegExp): void {
  assert.match(r.stderr, said);
  assert.match(r.stderr, /^ {2}fix: /m, r.stderr);
  assert.doesNotMatch(r.stderr, /\b(EACCES|ENOTDIR|EISDIR|ENAMETOOLONG|EROFS|ENOENT|ENOSPC):/, r.stderr);
  assert.doesNotMatch(r.stderr, /^\s+at /m, r.stderr);
}

async function gone(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => false,
    () => true,
  );
}

test("a non-empty directory that is not a relonix prefix is refused, listing what is in the way, and the user's files stay as they were", async () => {
  const dir = path.join(top, 'mine');
  await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
  await fs.writeFile(path.join(dir, 'bin', 'nix-build'), '#!/bin/sh\necho mine\n', { mode: 0o755 });
  await fs.writeFile(path.join(dir, 'notes.txt'), 'keep me\n');
  const r = await relonix(undefined, ['bootstrap', '--prefix', dir, '--url', fx.tarball]);
  assert.equal(r.code, EXIT.preflight, r.stderr);
  worded(r, /is not empty and not a relonix prefix: bin, notes\.txt would be in the way/);
  assert.equal(await fs.readFile(path.join(dir, 'bin', 'nix-build'), 'utf8'), '#!/bin/sh\necho mine\n');
  assert.deepEqual((await fs.readdir(dir)).sort(), ['bin', 'notes.txt'], 'nothing was added');
});

test('prefixes Nix cannot use (a newline, a space, a quote, a colon, a backslash, a semicolon, too long a path) are refused before anything is created', async () => {
  const long = path.join(top, 'long', 'x'.repeat(200), 'y'.repeat(200), 'z'.repeat(60));
  for (const [prefix, said] of [
    [path.join(top, 'a\nb', 'nix'), /has a control character \("\\n"\)/],
    [path.join(top, 'a b', 'nix'), /has whitespace/],
    [path.join(top, 'a"b', 'nix'), /has a double quote/],
    [path.join(top, 'a:b', 'nix'), /has a colon/],
    [path.join(top, 'a\\b', 'nix'), /has a backslash/],
    [path.join(top, 'a;b', 'nix'), /has a semicolon/],
    [long, /is \d+ bytes long; Nix's database takes a prefix of at most 483/],
  ] as const) {
    const r = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', fx.tarball]);
    assert.equal(r.code, EXIT.preflight, `${JSON.stringify(prefix)}: ${r.stderr}`);
    worded(r, said);
    assert.ok(await gone(path.dirname(prefix)), `nothing was created for ${JSON.stringify(prefix)}`);
  }
});

test('a prefix the system refuses (a file on the way, /proc, a read-only mount, no permission) is one sentence with the fix, exit 5', async () => {
  await fs.writeFile(path.join(top, 'plain-file'), 'x');
  const ro = path.join(top, 'ro');
  await fs.mkdir(ro);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
  const locked = path.join(top, 'locked');
  await fs.mkdir(locked, { mode: 0o555 });
  await fs.chmod(locked, 0o555);
  try {
    for (const [uid, prefix, said] of [
      [undefined, path.join(top, 'plain-file', 'nix'), /plain-file is a file, not a directory/],
      [undefined, '/proc/relonix-test/nix', /\/proc takes no new directories/],
      [undefined, path.join(ro, 'nix'), /ro is on a read-only filesystem/],
      [NOBODY_UID, path.join(locked, 'nix'), /may not create .*locked\/nix \(no write permission in .*locked\)/],
    ] as const) {
      const r = await relonix(uid, ['bootstrap', '--prefix', prefix, '--url', fx.tarball]);
      assert.equal(r.code, EXIT.preflight, `${prefix}: ${r.stderr}`);
      worded(r, said);
      assert.match(r.stderr, /cannot create the prefix/);
    }
  } finally {
    execFileSync('umount', [ro]);
  }
});

test('a --url that is no regular file (a directory, /dev/zero) or a file:// URL with a host is a usage error, found in preflight', async () => {
  for (const [url, said] of [
    [top, /is a directory, not a regular file/],
    ['/dev/zero', /\/dev\/zero is a device, not a regular file/],
    ['file://otherhost/nix.tar.xz', /is not a local file's URL/],
    [path.join(top, 'missing.tar.xz'), /cannot be read: it does not exist/],
  ] as const) {
    const prefix = path.join(top, 'url', path.basename(url), 'nix');
    const r = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', url, '--sha256', ZEROS, '--json']);
    assert.equal(r.code, EXIT.usage, `${url}: ${r.stderr}`);
    worded(r, said);
    const err = events(r.stdout).find((e) => e.event === 'error');
    assert.equal(err?.kind, 'usage', r.stdout);
    assert.match(String(err?.message), /stage preflight/);
    assert.ok(await gone(path.join(prefix, 'var', 'relonix', 'downloads')), 'nothing was downloaded');
  }
});

test('a server that sends an endless body without a size is cut at --max-download, and one announcing more than the disk holds is refused before a byte is written', async () => {
  const TARBALL = 'nix-2.8.0-x86_64-linux.tar.xz';
  let endlessCut = false;
  const server = await startServer({
    handler: async (req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(405).end();
        return true;
      }
      if (req.url === `/huge/${TARBALL}`) {
        // a size no disk here has; the body never comes
        res.writeHead(200, { 'content-length': String(2 ** 45) });
        res.write(Buffer.alloc(1024));
        return true;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      let closed = false;
      res.once('close', () => (closed = true));
      while (!closed) {
        if (!res.write(chunk)) await new Promise((r) => setTimeout(r, 10));
      }
      endlessCut = true;
      return true;
    },
  });
  // from the server as `name`, allowing a download of `maxMib`: the result and what it wrote
  const fetchAs = async (name: string, maxMib: number) => {
    const prefix = path.join(top, name, 'nix');
    const url = `${server.url}/${name}/${TARBALL}`;
    const r = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', url, '--sha256', ZEROS, '--max-download', String(maxMib)]);
    const part = path.join(prefix, 'var', 'relonix', 'downloads', `${TARBALL}.part`);
    const written = await fs.stat(part).then(
      (st) => st.size,
      () => 0,
    );
    return { r, written };
  };
  try {
    const endless = await fetchAs('endless', 4);
    assert.equal(endless.r.code, EXIT.usage, endless.r.stderr);
    worded(endless.r, /sends more than 4\.0 MiB without announcing a size/);
    assert.match(endless.r.stderr, /--max-download/);
    assert.ok(endlessCut, 'relonix closed the connection');
    assert.ok(endless.written > 0 && endless.written <= 4 * 2 ** 20, `no more than the bound was written (${endless.written})`);

    const huge = await fetchAs('huge', 2 ** 26);
    assert.equal(huge.r.code, EXIT.preflight, huge.r.stderr);
    worded(huge.r, /no space left on .*huge\/nix: \d+ MiB free, \d+ MiB needed/);
    assert.equal(huge.written, 0, 'not a byte of it was written');
  } finally {
    await server.close();
  }
});

test('a disk that fills during the download: a clear error, exit 5 and a JSON event, then the same command continues once space is free', async () => {
  const mnt = path.join(top, 'small');
  await fs.mkdir(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=230m', 'tmpfs', mnt]);
  const filler = path.join(mnt, 'filler');
  try {
    // passes preflight and the size check, then, a megabyte into the body, something else fills the
    // disk (once); the validators are the server's own, so that the next run can resume
    const body = await fs.readFile(fx.tarball);
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
    let filled = false;
    const server = await startServer({
      dir: path.dirname(fx.tarball),
      handler: async (req, res) => {
        if (req.method !== 'GET' || filled) return false;
        filled = true;
        res.writeHead(200, { 'content-length': String(body.length), etag, 'accept-ranges': 'bytes' });
        await new Promise((r) => res.write(body.subarray(0, 2 ** 20), r));
        await new Promise((r) => setTimeout(r, 500));
        const st = await fs.statfs(mnt);
        execFileSync('fallocate', ['-l', String(Number(st.bavail) * Number(st.bsize) - 2 ** 20), filler]);
        res.end(body.subarray(2 ** 20));
        return true;
      },
    });
    try {
      const prefix = path.join(mnt, 'nix');
      const args = ['bootstrap', '--prefix', prefix, '--url', `${server.url}/${path.basename(fx.tarball)}`, '--sha256', fx.sha256];
      const full = await relonix(undefined, [...args, '--json']);
      assert.equal(full.code, EXIT.preflight, `${full.stdout}\n${full.stderr}`);
      worded(full, /stage fetch .*no space left on .*small\/nix: \d+(\.\d)? MiB free, \d+ MiB needed/);
      const err = events(full.stdout).find((e) => e.event === 'error');
      assert.equal(err?.kind, 'preflight', full.stdout);
      assert.equal(err?.exitCode, EXIT.preflight);
      const part = path.join(prefix, 'var', 'relonix', 'downloads', `${path.basename(fx.tarball)}.part`);
      assert.ok((await fs.stat(part)).size >= 2 ** 20, 'what arrived before the disk filled is kept');
      await fs.rm(filler);
      const served = server.log.length;
      const again = await relonix(undefined, args);
      assert.equal(again.code, EXIT.ok, again.stderr);
      const resumed = server.log.slice(served).find((x) => x.method === 'GET' && x.range);
      assert.ok(resumed, `the download resumed where it stopped: ${JSON.stringify(server.log.slice(served))}`);
      const verify = await relonix(undefined, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
      assert.equal(verify.code, EXIT.ok, verify.stderr);
    } finally {
      await server.close();
    }
  } finally {
    await removePrefix(path.join(mnt, 'nix'));
    execFileSync('umount', [mnt]);
  }
});

test('usage errors under --json are JSON events too, and a damaged state file is said with its fix', async () => {
  const bogus = await relonix(undefined, ['bootstrap', '--json', '--bogus']);
  assert.equal(bogus.code, EXIT.usage, bogus.stderr);
  const ev = events(bogus.stdout);
  assert.deepEqual(
    ev.map((e) => [e.event, e.kind, e.exitCode]),
    [['error', 'usage', EXIT.usage]],
  );
  assert.match(String(ev[0]!.message), /unknown option '--bogus'/);

  const prefix = path.join(top, 'damaged');
  await fs.mkdir(path.join(prefix, 'var', 'relonix'), { recursive: true });
  for (const text of ['{"version":1', '[]', '{"version":1}']) {
    await fs.writeFile(path.join(prefix, 'var', 'relonix', 'state.json'), text);
    for (const args of [['status'], ['bootstrap', '--url', fx.tarball]]) {
      const r = await relonix(undefined, [...args, '--prefix', prefix]);
      assert.equal(r.code, EXIT.failure, r.stderr);
      worded(r, /state file .*state\.json is damaged/);
      assert.match(r.stderr, /relonix uninstall --prefix /);
      assert.doesNotMatch(r.stderr, /Cannot convert/);
    }
  }
});
