// A 128 MiB upstream NAR translated end to end (read from the cache, FileHash checked, rewritten,
// hashed, compressed, staged, uploaded) with RSS growing far less than the NAR.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { decompress } from '../../src/cache/compress.ts';
import { generateKey, parseSecretKey, signNarInfo } from '../../src/cache/keys.ts';
import { formatCacheInfo } from '../../src/cache/meta.ts';
import { formatNarInfo, type NarInfo, parseNarInfo } from '../../src/cache/narinfo.ts';
import { dumpPath, formatNarHash } from '../../src/store/nar/write.ts';
import { removeTree } from '../../src/util/fs.ts';
import { REPO } from '../helpers/paths.ts';

const SIZE = 128 << 20;
const BIG = `/nix/store/${'b'.repeat(32)}-big`;
const LIB = `/nix/store/${'c'.repeat(32)}-lib`;

/** Streams a NAR to `file`, hashing it. */
async function writeNar(src: AsyncIterable<Buffer>, file: string): Promise<{ narHash: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const hashed = async function* () {
    for await (const b of src) {
      h.update(b);
      size += b.length;
      yield b;
    }
  };
  await pipeline(Readable.from(hashed()), createWriteStream(file));
  return { narHash: formatNarHash(h.digest()), size };
}

/**
 * An upstream cache at /nix/store: BIG, a sparse 128 MiB file with two references to LIB in it,
 * and LIB, an empty file; uncompressed, signed by `key`.
 */
async function bigUpstream(dir: string, key: ReturnType<typeof generateKey>): Promise<void> {
  const up = path.join(dir, 'up');
  await fs.mkdir(path.join(up, 'nar'), { recursive: true });
  await fs.writeFile(path.join(up, 'nix-cache-info'), formatCacheInfo({ storeDir: '/nix/store' }));
  const blob = path.join(dir, 'blob');
  await fs.writeFile(blob, `${LIB}/lib/libfoo.so\0`);
  await fs.truncate(blob, SIZE);
  const fh = await fs.open(blob, 'r+');
  await fh.write(Buffer.from(`\0${LIB}/share/data\0`), 0, undefined, SIZE / 2);
  await fh.close();
  await fs.writeFile(path.join(dir, 'empty'), '');
  for (const [storePath, file, refs] of [
    [BIG, blob, [LIB]],
    [LIB, path.join(dir, 'empty'), []],
  ] as const) {
    const staged = path.join(up, 'nar', 'staged');
    const { narHash, size } = await writeNar(dumpPath(file), staged);
    const url = `nar/${narHash.slice(7)}.nar`;
    await fs.rename(staged, path.join(up, url));
    const ni: NarInfo = {
      storePath,
      url,
      compression: 'none',
      fileHash: narHash,
      fileSize: size,
      narHash,
      narSize: size,
      references: refs.map((r) => path.basename(r)),
      sigs: [],
    };
    ni.sigs.push(signNarInfo(ni, parseSecretKey(key.secret)));
    await fs.writeFile(path.join(up, `${path.basename(storePath).slice(0, 32)}.narinfo`), formatNarInfo(ni));
  }
}

test('a 128 MiB upstream NAR translates with RSS growing far less than the NAR, its references rewritten', { timeout: 180_000 }, async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-translate-big-'));
  try {
    const upKey = generateKey('big-upstream-1');
    await bigUpstream(dir, upKey);
    await fs.writeFile(path.join(dir, 'mine.secret'), generateKey('big-prefix-1').secret);
    const script = path.join(dir, 'translate-big.mts');
    await fs.writeFile(
      script,
      `
import { readFileSync } from 'node:fs';
import { parseSecretKey } from ${JSON.stringify(path.join(REPO, 'src/cache/keys.ts'))};
import { layout } from ${JSON.stringify(path.join(REPO, 'src/prefix/layout.ts'))};
import { translatePaths } from ${JSON.stringify(path.join(REPO, 'src/translate/translate.ts'))};
const [dir, upKey] = process.argv.slice(2);
const key = parseSecretKey(readFileSync(dir + '/mine.secret', 'utf8'));
const before = process.memoryUsage().rss;
const r = await translatePaths({ layout: layout(dir + '/prefix', '/tmp/store'), from: 'file://' + dir + '/up', fromKeys: [upKey], to: 'file://' + dir + '/to', key, compression: 'none' }, [${JSON.stringify(BIG)}]);
process.stdout.write(JSON.stringify({ before, maxRss: process.resourceUsage().maxRSS * 1024, r }));
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script, dir, upKey.public], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    assert.equal(await new Promise<number | null>((r) => child.on('close', r)), 0, err);
    const m = JSON.parse(out) as { before: number; maxRss: number; r: { published: string[] } };
    assert.deepEqual(m.r.published, [`/tmp/store/${'b'.repeat(32)}-big`, `/tmp/store/${'c'.repeat(32)}-lib`]);
    const grew = m.maxRss - m.before;
    t.diagnostic(`peak RSS ${(m.maxRss / 2 ** 20).toFixed(1)} MiB, ${(grew / 2 ** 20).toFixed(1)} MiB above the start, for a ${SIZE / 2 ** 20} MiB NAR`);
    assert.ok(grew < 64 << 20, `RSS grew by ${(grew / 2 ** 20).toFixed(1)} MiB translating a ${SIZE / 2 ** 20} MiB NAR`);

    const ni = parseNarInfo(await fs.readFile(path.join(dir, 'to', `${'b'.repeat(32)}.narinfo`), 'utf8'));
    assert.equal(ni.storePath, `/tmp/store/${'b'.repeat(32)}-big`);
    assert.ok(ni.narSize > SIZE);
    // what is around the two references, with a reference's length of carry between chunks
    const seen: string[] = [];
    let carry = '';
    for await (const b of decompress(createReadStream(path.join(dir, 'to', ni.url)), ni.compression)) {
      const s = carry + Buffer.from(b).toString('latin1');
      for (const m of s.matchAll(/\/(?:nix|tmp)\/store\/[0-9a-z]{32}-lib\/[a-z/.]+/g)) if (m.index! + m[0].length < s.length) seen.push(m[0]);
      carry = s.slice(-80);
    }
    const lib = path.basename(LIB);
    assert.deepEqual(
      [...new Set(seen)],
      [`/tmp/store/${lib}/lib/libfoo.so`, `/tmp/store/${lib}/share/data`],
      'both references in the blob were rewritten, nothing else',
    );
  } finally {
    await removeTree(dir);
  }
});
