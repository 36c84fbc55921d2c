// Every kind of error reaches the shell as the exit code the contract gives it, with its fix on
// stderr, as a JSON event under --json, and with its cause chain under RELONIX_DEBUG=1.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { layout } from '../../src/prefix/layout.ts';
import { withLock } from '../../src/util/lock.ts';
import { EXIT, type RunResult, relonix } from '../helpers/cli.ts';
import { startServer } from '../helpers/http.ts';

const ZEROS = '0'.repeat(64);

async function scratch(tag: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `relonix-exit-${tag}-`));
}

function events(r: RunResult): Record<string, unknown>[] {
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('usage: a malformed --sha256 exits 2 and says what a checksum looks like', async () => {
  const dir = await scratch('usage');
  const r = await relonix(undefined, ['bootstrap', '--prefix', path.join(dir, 'nix'), '--sha256', 'not-hex']);
  assert.equal(r.code, EXIT.usage, r.stderr);
  assert.match(r.stderr, /--sha256 takes 64 hex digits, got /);
  assert.match(r.stderr, /fix: /);
  await fs.rm(dir, { recursive: true, force: true });
});

test('usage: translate with nothing to translate, another upstream without its key, a store dir that is not one, or an empty prefix, exits 2 with the fix', async () => {
  const dir = await scratch('translate');
  await fs.writeFile(path.join(dir, 'k.secret'), `k-1:${Buffer.alloc(64).toString('base64')}`);
  const base = ['translate', '--prefix', path.join(dir, 'nix'), '--to', `file://${dir}/to`, '--secret-key', path.join(dir, 'k.secret')];
  for (const [args, said] of [
    [base, /nothing to translate/],
    [[...base, '--from', 'http://127.0.0.1:9', '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x'], /needs --from-key/],
    [['bootstrap', '--prefix', path.join(dir, 'nix'), '--store-dir', 'relative/store'], /--store-dir must be an absolute/],
    [['doctor', '--prefix', ''], /the prefix is empty \(--prefix ""\)/],
  ] as const) {
    const r = await relonix(undefined, [...args]);
    assert.equal(r.code, EXIT.usage, r.stderr);
    assert.match(r.stderr, said);
    assert.match(r.stderr, /fix: /);
  }
  await fs.rm(dir, { recursive: true, force: true });
});

test('integrity: a tarball whose checksum differs exits 3, as a JSON event too, and leaves no store', async () => {
  const dir = await scratch('integrity');
  const tarball = path.join(dir, 'nix-2.8.0-x86_64-linux.tar.xz');
  await fs.writeFile(tarball, 'not the tarball you asked for\n');
  const prefix = path.join(dir, 'nix');
  const r = await relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', tarball, '--sha256', ZEROS, '--json']);
  assert.equal(r.code, EXIT.integrity, r.stderr);
  const err = events(r).find((e) => e.event === 'error');
  assert.ok(err, `an error event: ${r.stdout}`);
  assert.equal(err.kind, 'integrity');
  assert.equal(err.exitCode, EXIT.integrity);
  assert.match(String(err.message), /sha256/);
  await assert.rejects(fs.access(path.join(prefix, 'store')));
  await fs.rm(dir, { recursive: true, force: true });
});

test('busy: a prefix another relonix holds exits 4 naming the holder', async () => {
  const dir = await scratch('busy');
  const prefix = path.join(dir, 'nix');
  const r = await withLock(layout(prefix).lockFile, { what: 'a test holding the prefix' }, () =>
    relonix(undefined, ['bootstrap', '--prefix', prefix, '--url', path.join(dir, 'nix-2.8.0-x86_64-linux.tar.xz'), '--sha256', ZEROS]),
  );
  assert.equal(r.code, EXIT.busy, r.stderr);
  assert.match(r.stderr, new RegExp(`pid ${process.pid}, a test holding the prefix`));
  assert.match(r.stderr, /--wait SECONDS/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('preflight: a prefix reached through a symlink exits 5 and names the real path', async () => {
  const dir = await scratch('preflight');
  await fs.mkdir(path.join(dir, 'real'));
  await fs.symlink(path.join(dir, 'real'), path.join(dir, 'link'));
  const tarball = path.join(dir, 'nix-2.8.0-x86_64-linux.tar.xz');
  await fs.writeFile(tarball, 'x');
  const r = await relonix(undefined, ['bootstrap', '--prefix', path.join(dir, 'link', 'nix'), '--url', tarball, '--sha256', ZEROS]);
  assert.equal(r.code, EXIT.preflight, r.stderr);
  assert.match(r.stderr, /goes through a symlink/);
  assert.ok(r.stderr.includes(`--prefix ${path.join(dir, 'real', 'nix')}`), r.stderr);
  await fs.rm(dir, { recursive: true, force: true });
});

test('failure: a mirror that has no such tarball exits 1, not as a network failure, with the URL in the message', async () => {
  const dir = await scratch('network');
  const server = await startServer({ files: {} });
  try {
    const url = `${server.url}/nix-2.8.0-x86_64-linux.tar.xz`;
    const r = await relonix(undefined, ['bootstrap', '--prefix', path.join(dir, 'nix'), '--url', url, '--sha256', ZEROS]);
    assert.equal(r.code, EXIT.failure, r.stderr);
    assert.match(r.stderr, /HTTP 404 Not Found: no such object on the server/);
    assert.doesNotMatch(r.stderr, /network/);
    assert.ok(r.stderr.includes(url), r.stderr);
  } finally {
    await server.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('failure: asking for the environment of a prefix with no Nix exits 1 with the command that fixes it', async () => {
  const dir = await scratch('failure');
  const r = await relonix(undefined, ['env', '--prefix', path.join(dir, 'nix')]);
  assert.equal(r.code, EXIT.failure, r.stderr);
  assert.match(r.stderr, /no Nix is installed/);
  assert.match(r.stderr, /fix: run relonix bootstrap --prefix /);
  await fs.rm(dir, { recursive: true, force: true });
});

test('RELONIX_DEBUG=1 prints the cause chain with stacks; without it, none', async () => {
  const dir = await scratch('debug');
  const tarball = path.join(dir, 'nix-2.8.0-x86_64-linux.tar.xz');
  await fs.writeFile(tarball, 'x');
  const args = ['bootstrap', '--prefix', path.join(dir, 'nix'), '--url', tarball, '--sha256', ZEROS];
  const plain = await relonix(undefined, args);
  const debug = await relonix(undefined, args, ['RELONIX_DEBUG=1']);
  assert.equal(plain.code, EXIT.integrity);
  assert.equal(debug.code, EXIT.integrity);
  assert.doesNotMatch(plain.stderr, /^\s+at /m);
  // the stage's error wraps the download's: both are printed, each with its stack
  const stacks = debug.stderr.split('\n').filter((l) => /^RelonixError: /.test(l));
  assert.ok(stacks.length >= 2, debug.stderr);
  assert.match(debug.stderr, /^\s+at /m);
  assert.match(stacks[0]!, /stage fetch/);
  await fs.rm(dir, { recursive: true, force: true });
});
