// Relocating store paths as an archive hands them over: what each path ends with (counts, changed,
// NAR hash) is what relocating the same tree on disk records, whatever order the entries come in;
// a hash the stream cannot take is left for the register stage instead of being taken wrong.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { narDigest } from '../../src/store/nar/write.ts';
import { type StoreEntry, StreamRelocation } from '../../src/store/relocate-stream.ts';
import { type ElfRelocator, relocateTree } from '../../src/store/relocate-tree.ts';
import { removeTree } from '../../src/util/fs.ts';

const FROM = '/nix/store';
const A = '0c6l5hhy7lrhlfzxjx6bf0xqmnhz8gzi-bash-5.1';
const B = '1b9p07z77phvv2hf6gm9f28syp39f1ag-hello-2.12';

const noElf: ElfRelocator = () => {
  throw new Error('the ELF engine must not be called for non-ELF files');
};

type Item = { rel: string[]; dir: true } | { rel: string[]; text: string; mode: number } | { rel: string[]; link: string };

// path A's entries, deliberately not in the order a NAR lists them
const ITEMS_A: Item[] = [
  { rel: [], dir: true },
  { rel: ['share'], dir: true },
  { rel: ['share', 'z.txt'], text: 'plain text, no store path\n', mode: 0o644 },
  { rel: ['bin'], dir: true },
  { rel: ['share', 'a.sh'], text: `#!${FROM}/${A}/bin/sh\nexec ${FROM}/${B}/bin/hello "$@"\n`, mode: 0o755 },
  { rel: ['bin', 'sh'], link: `${FROM}/${A}/bin/bash` },
  { rel: ['bin', 'bash'], text: 'echo bash\n', mode: 0o755 },
];

/** Writes the items of a path as they are before relocation, under `dir/<basename>`. */
async function writeTree(dir: string, basename: string, items: Item[]): Promise<void> {
  for (const it of items) {
    const p = path.join(dir, basename, ...it.rel);
    if ('dir' in it) await fs.mkdir(p, { recursive: true });
    else if ('link' in it) await fs.symlink(it.link, p);
    else await fs.writeFile(p, it.text, { mode: it.mode });
  }
}

function feed(r: StreamRelocation, basename: string, items: Item[], to: string): void {
  for (const it of items) {
    const at: StoreEntry = { basename, rel: it.rel, abs: path.join(to, basename, ...it.rel) };
    if ('dir' in it) r.directory(at);
    else if ('link' in it) r.symlink(at, it.link);
    else r.file(at, Buffer.from(it.text), it.mode);
  }
}

test('paths relocated as they stream end as relocateTree leaves the same tree, NAR hash included, in any entry order', async () => {
  const top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-stream-'));
  try {
    const to = path.join(top, 'store');
    const src = path.join(top, 'src');
    await writeTree(src, A, ITEMS_A);
    await writeTree(src, B, [{ rel: [], text: `${FROM}/${A}/bin/sh\n`, mode: 0o444 }]);
    const onDisk = await relocateTree({ sourceDir: src, from: FROM, to, workDir: path.join(top, 'work'), relocateElf: noElf });

    const r = new StreamRelocation({ from: FROM, to, relocateElf: noElf });
    feed(r, A, ITEMS_A, to);
    feed(r, B, [{ rel: [], text: `${FROM}/${A}/bin/sh\n`, mode: 0o444 }], to);
    const streamed = new Map(r.results().map((p) => [p.basename, p]));
    for (const disk of onDisk.paths) {
      const s = streamed.get(disk.basename);
      assert.ok(s, disk.basename);
      assert.deepEqual(s.counts, disk.counts, `${disk.basename}: counts`);
      assert.equal(s.changed, disk.changed);
      assert.deepEqual(s.hits, disk.hits);
      assert.equal(s.narHash, disk.narHash, `${disk.basename}: NAR hash`);
      assert.equal(s.narSize, disk.narSize);
      // and both are the hash of what is in the store now
      const d = await narDigest(path.join(to, disk.basename));
      assert.equal(s.narHash, d.hash.toString('hex'));
    }
    assert.equal(streamed.get(A)!.counts.textFiles, 1);
    assert.equal(streamed.get(A)!.counts.symlinks, 1);
  } finally {
    await removeTree(top);
  }
});

test('a file returns the bytes and store mode to write; an archive that comes back to a path, or one too big to hold, leaves its hash to be taken later', () => {
  const to = '/tmp/nix/store';
  const r = new StreamRelocation({ from: FROM, to, relocateElf: noElf, maxHeld: 100 });
  const out = r.file({ basename: A, rel: ['run'], abs: '/x' }, Buffer.from(`#!${FROM}/${A}/bin/sh\n`), 0o750);
  assert.equal(out.content.toString(), `#!${to}/${A}/bin/sh\n`);
  assert.equal(out.mode, 0o555);
  assert.equal(r.file({ basename: A, rel: ['doc'], abs: '/y' }, Buffer.from('x'), 0o640).mode, 0o444);
  r.file({ basename: B, rel: ['f'], abs: '/z' }, Buffer.from('b'), 0o644);
  // back to A after B began: A's hash, taken when B began, no longer covers A
  r.file({ basename: A, rel: ['late'], abs: '/w' }, Buffer.from('late'), 0o644);
  const big = 'C'.repeat(32);
  r.file({ basename: big, rel: ['huge'], abs: '/h' }, Buffer.alloc(200), 0o644);
  const res = new Map(r.results().map((p) => [p.basename, p]));
  assert.equal(res.get(A)!.narHash, undefined);
  assert.equal(res.get(A)!.changed, true);
  assert.equal(res.get(A)!.counts.files, 3);
  assert.match(res.get(B)!.narHash ?? '', /^[0-9a-f]{64}$/);
  assert.equal(res.get(big)!.narHash, undefined);
  // a path left for relocation from disk is not among the results
  r.abandon(B);
  assert.equal(
    r.results().some((p) => p.basename === B),
    false,
  );
});
