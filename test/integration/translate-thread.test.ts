// A translation on one of the translator's threads: upstream's NAR (a file:// cache) fetched,
// rewritten and staged where the thread runs, only hashes and sizes coming back; a NAR that is not
// what upstream's narinfo says is refused as such; a thread that dies fails the translations it had
// instead of leaving them waiting; threads without work end, and come back when work does. The
// threads run the sources of this checkout (the bundle's own are run by the end-to-end tests).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { NarInfo } from '../../src/cache/narinfo.ts';
import { layout } from '../../src/prefix/layout.ts';
import { dumpPath, formatNarHash } from '../../src/store/nar/write.ts';
import type { TranslateItem } from '../../src/translate/plan.ts';
import { TranslateThreads } from '../../src/translator/threads.ts';
import type { ThreadReply } from '../../src/translator/translate-thread.ts';
import { waitUntil } from '../helpers/wait.ts';

const THEIRS = { self: `${'0'.repeat(31)}1`, dep: `${'0'.repeat(31)}2` };
const OURS = { self: `${'a'.repeat(31)}1`, dep: `${'a'.repeat(31)}2` };
const STORE = '/tmp/nix/s';

let dir: string;
let threads: TranslateThreads;

async function nar(tree: string): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of dumpPath(tree)) out.push(b);
  return Buffer.concat(out);
}

/** A package whose script names its dependency, at `store` with the given hash parts. */
async function pkg(at: string, store: string, h: { self: string; dep: string }): Promise<Buffer> {
  await fs.mkdir(path.join(at, 'bin'), { recursive: true });
  const lines = Array.from({ length: 2000 }, (_, i) => `exec ${store}/${h.dep}-dep/bin/dep ${i} # from ${store}/${h.self}-pkg`);
  await fs.writeFile(path.join(at, 'bin', 'run'), `#!/bin/sh\n${lines.join('\n')}\n`, { mode: 0o755 });
  return nar(at);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest();

function item(upstreamNar: Buffer, narHash = formatNarHash(sha(upstreamNar))): TranslateItem {
  const from: NarInfo = {
    storePath: `/nix/store/${THEIRS.self}-pkg`,
    url: 'nar/pkg.nar',
    compression: 'none',
    fileHash: narHash,
    fileSize: upstreamNar.length,
    narHash,
    narSize: upstreamNar.length,
    references: [`${THEIRS.dep}-dep`],
    sigs: [],
  };
  return {
    path: `${STORE}/${OURS.self}-pkg`,
    from,
    references: [`${STORE}/${OURS.dep}-dep`],
    hashes: new Map([
      [THEIRS.self, OURS.self],
      [THEIRS.dep, OURS.dep],
    ]),
    verbatim: false,
  };
}

function job(it: TranslateItem, url: string, file: string) {
  return { layout: layout(path.join(dir, 'prefix'), STORE), upstream: { url, storeDir: '/nix/store' }, item: it, file };
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-thread-'));
  threads = new TranslateThreads(2);
});
after(async () => {
  await threads.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

test('a thread rewrites upstream NAR into the staged file and hands back its hash and size', async () => {
  const theirs = await pkg(path.join(dir, 'theirs'), '/nix/store', THEIRS);
  const ours = await pkg(path.join(dir, 'ours'), STORE, OURS);
  await fs.mkdir(path.join(dir, 'up', 'nar'), { recursive: true });
  await fs.writeFile(path.join(dir, 'up', 'nar', 'pkg.nar'), theirs);
  const file = path.join(dir, 'staged-1');
  const r = await threads.run(job(item(theirs), `file://${path.join(dir, 'up')}`, file));
  assert.ok(r.ok, JSON.stringify(r));
  assert.deepEqual(await fs.readFile(file), ours, 'the staged NAR is upstream NAR with our store dir and hash parts');
  assert.deepEqual(Buffer.from(r.staged.narHash), sha(ours));
  assert.equal(r.staged.narSize, ours.length);
  assert.deepEqual(r.compressed, []);
});

test('threads without work end, and the next translation starts them again', async () => {
  const theirs = await pkg(path.join(dir, 'theirs4'), '/nix/store', THEIRS);
  await fs.mkdir(path.join(dir, 'up4', 'nar'), { recursive: true });
  await fs.writeFile(path.join(dir, 'up4', 'nar', 'pkg.nar'), theirs);
  const own = new TranslateThreads(1, 200);
  try {
    for (const n of [1, 2]) {
      const r = await own.run(job(item(theirs), `file://${path.join(dir, 'up4')}`, path.join(dir, `staged-4-${n}`)));
      assert.ok(r.ok, JSON.stringify(r));
      await waitUntil(`after translation ${n}, the idle thread ended`, () => own.running === 0, { ms: 5000 });
    }
  } finally {
    await own.stop();
  }
});

test('a NAR other than what upstream signed is refused as an integrity failure, naming the path', async () => {
  const theirs = await pkg(path.join(dir, 'theirs2'), '/nix/store', THEIRS);
  await fs.mkdir(path.join(dir, 'up2', 'nar'), { recursive: true });
  const tampered = Buffer.from(theirs);
  // a byte of the script's text, not of the NAR's framing
  const at = tampered.indexOf('exec /nix/store') + 1;
  tampered[at] = tampered[at]! ^ 1;
  await fs.writeFile(path.join(dir, 'up2', 'nar', 'pkg.nar'), tampered);
  // the narinfo's file hash is the NAR's: the NAR hash, checked after the rewrite, catches it
  const r = await threads.run(job(item(theirs, formatNarHash(sha(theirs))), `file://${path.join(dir, 'up2')}`, path.join(dir, 'staged-2')));
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.integrity, JSON.stringify(r));
  assert.match(!r.ok ? r.message : '', new RegExp(`/nix/store/${THEIRS.self}-pkg`));
});

test('a thread that stops fails the translations it had', async () => {
  // an upstream that accepts and never answers: the translation waits until its thread goes
  const hung = http.createServer(() => undefined);
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  try {
    const own = new TranslateThreads(1);
    const theirs = await pkg(path.join(dir, 'theirs3'), '/nix/store', THEIRS);
    const pending = own.run(job(item(theirs), `http://127.0.0.1:${(hung.address() as AddressInfo).port}`, path.join(dir, 'staged-3')));
    const first = await Promise.race([pending, new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 300))]);
    assert.equal(first, 'waiting', 'the translation waits on its upstream');
    await own.stop();
    const r: ThreadReply = await pending;
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.message : '', /the translation thread stopped/);
    assert.ok(!r.ok && !r.integrity);
  } finally {
    hung.closeAllConnections();
    hung.close();
  }
});
