// Upstream's xz NARs as the translator decodes them with the host's xz (into a file in its work dir,
// read back) and, with the host's xz hidden, in WebAssembly: the same translation either way, and a
// corrupt xz stream, whose FileHash an attacker made match, refused with nothing kept, staged or
// left in the work dir.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { generateKey, parseSecretKey } from '../../src/cache/keys.ts';
import type { NarInfo } from '../../src/cache/narinfo.ts';
import { openTarget } from '../../src/cache/targets.ts';
import { layout } from '../../src/prefix/layout.ts';
import { formatNarHash } from '../../src/store/nar/write.ts';
import { type ItemContext, translatedItem } from '../../src/translate/item.ts';
import type { TranslateItem } from '../../src/translate/plan.ts';
import { FileCache } from '../../src/translator/keep.ts';
import { isKind } from '../../src/util/errors.ts';
import { hashOf, type Mapping, nar, rewritten, type Tree } from '../helpers/nar-model.ts';
import { tempDir } from '../helpers/paths.ts';
import { requireTool } from '../helpers/tools.ts';

requireTool('xz');

const work = tempDir('hostxz');
after(() => fs.rm(work, { recursive: true, force: true }));

const [H1, H2] = [hashOf('a'), hashOf('b')];
const M: Mapping = { from: '/nix/store', to: '/tmp/b10/s', hashes: new Map([[H1, hashOf('c')]]) };
const lines = Array.from({ length: 60000 }, (_, i) => `/nix/store/${i % 2 ? H1 : H2}-dep/lib ${i}\n`).join('');
const tree: Tree = {
  type: 'directory',
  entries: {
    bin: { type: 'directory', entries: { run: { type: 'regular', executable: true, contents: Buffer.from(`#!/bin/sh\nexec /nix/store/${H1}-dep/bin/x\n`) } } },
    share: {
      type: 'directory',
      entries: { lines: { type: 'regular', contents: Buffer.from(lines) }, [`${H1}-dep`]: { type: 'symlink', target: `/nix/store/${H2}-x` } },
    },
  },
};

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

/** An upstream cache dir holding `file` as the xz NAR of `plain`, its FileHash matching the file. */
async function upstreamWith(tag: string, plain: Buffer, file: Buffer): Promise<{ ctx: ItemContext; item: TranslateItem; cache: FileCache; dirs: string[] }> {
  const root = path.join(work, tag);
  const up = path.join(root, 'up');
  await fs.mkdir(path.join(up, 'nar'), { recursive: true });
  const url = `nar/${tag}.nar.xz`;
  await fs.writeFile(path.join(up, url), file);
  const from: NarInfo = {
    storePath: `/nix/store/${H1}-dep`,
    url,
    compression: 'xz',
    fileHash: formatNarHash(sha256(file)),
    fileSize: file.length,
    narHash: formatNarHash(sha256(plain)),
    narSize: plain.length,
    references: [],
    sigs: [],
  };
  const item: TranslateItem = { path: `${M.to}/${hashOf('c')}-dep`, from, references: [], hashes: M.hashes, verbatim: false };
  const workDir = path.join(root, 'work');
  const ctx: ItemContext = {
    layout: { ...layout(path.join(root, 'prefix')), storeDir: M.to },
    upstream: { target: openTarget(up), storeDir: M.from, keys: [] },
    compressed: new Map(),
    streamed: true,
    workDir,
    spool: { tmpDir: workDir },
  };
  const cacheDir = path.join(root, 'cache');
  const cache = new FileCache(cacheDir, parseSecretKey(generateKey('test-1').secret));
  await cache.open();
  return { ctx, item, cache, dirs: [cacheDir, path.join(cacheDir, 'nar'), workDir] };
}

async function kept(tag: string): Promise<Buffer> {
  const plain = nar(tree);
  const u = await upstreamWith(tag, plain, execFileSync('xz', ['-c', '-6'], { input: plain }));
  await u.cache.keep(translatedItem(u.ctx, u.item));
  const narinfo = await u.cache.narinfo(hashOf('c'));
  assert.ok(narinfo, 'the narinfo is kept');
  const at = /^URL: (.*)$/m.exec(narinfo.toString())![1]!;
  assert.deepEqual(await fs.readdir(u.dirs[2]!).catch(() => []), [], 'nothing is left in the work dir');
  return fs.readFile(path.join(u.dirs[0]!, at));
}

function withHostXz<T>(on: boolean, fn: () => Promise<T>): Promise<T> {
  const was = process.env.RELONIX_NO_HOST_XZ;
  if (on) delete process.env.RELONIX_NO_HOST_XZ;
  else process.env.RELONIX_NO_HOST_XZ = '1';
  return fn().finally(() => {
    if (was === undefined) delete process.env.RELONIX_NO_HOST_XZ;
    else process.env.RELONIX_NO_HOST_XZ = was;
  });
}

test("an xz NAR decoded by the host's xz is translated as the WebAssembly decoder translates it", async () => {
  const host = await withHostXz(true, () => kept('good-host'));
  const wasm = await withHostXz(false, () => kept('good-wasm'));
  assert.ok(host.equals(nar(rewritten(tree, M))), 'the rewrite of what the host xz decoded is the oracle');
  assert.ok(host.equals(wasm));
});

test("a corrupt xz NAR whose FileHash matches is refused with the host's xz: nothing kept, staged or left behind", async () => {
  await withHostXz(true, async () => {
    const plain = nar(tree);
    const xz = execFileSync('xz', ['-c', '-6'], { input: plain });
    const bad = Buffer.from(xz);
    bad[bad.length >> 1]! ^= 0x55;
    const u = await upstreamWith('corrupt', plain, bad);
    await assert.rejects(
      u.cache.keep(translatedItem(u.ctx, u.item)),
      (e: unknown) => isKind(e, 'integrity') && /is unusable: the xz stream is corrupt: .*xz: .*corrupt/i.test((e as Error).message),
    );
    assert.equal(await u.cache.narinfo(hashOf('c')), undefined, 'no narinfo is served');
    for (const d of u.dirs) {
      const left = (await fs.readdir(d).catch(() => [] as string[])).filter((n) => n !== 'nar');
      assert.deepEqual(left, [], `${d} holds nothing`);
    }
  });
});
