// A NAR staged for a cache is hashed once: by whatever made it (a rewrite hashes what it writes),
// or here when nothing did.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { stageNarStream } from '../../src/cache/staged-nar.ts';

const bytes = Buffer.from('nix-archive-1 and then some');
async function* nar() {
  yield bytes.subarray(0, 5);
  yield bytes.subarray(5);
}

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

async function staging(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'staged-nar-'));
  dirs.push(dir);
  return path.join(dir, 'nar');
}

test('a NAR nothing hashed is hashed as it is staged', async () => {
  const file = await staging();
  const s = await stageNarStream(nar(), 'none', file);
  assert.deepEqual(s.narHash, createHash('sha256').update(bytes).digest());
  assert.equal(s.narSize, bytes.length);
  assert.deepEqual(await fs.readFile(file), bytes);
});

test("a NAR its maker hashed takes the maker's hash and size, for the file too when uncompressed", async () => {
  const file = await staging();
  // a hash no one could mistake for one computed here: the maker's is what is used
  const made = { hash: Buffer.alloc(32, 7), size: bytes.length };
  const s = await stageNarStream(nar(), 'none', file, () => made);
  assert.deepEqual(s, { narHash: made.hash, narSize: made.size, fileHash: made.hash, fileSize: made.size });
  assert.deepEqual(await fs.readFile(file), bytes);
});

test('a maker that promised a hash and gave none leaves no staged file behind', async () => {
  const file = await staging();
  await assert.rejects(
    stageNarStream(nar(), 'none', file, () => undefined),
    /internal error: .*without the hash/,
  );
  await assert.rejects(fs.access(file));
});
