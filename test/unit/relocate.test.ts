// Relocating text, symlinks and a synthetic store tree (no ELF file in it) from /nix/store to another store dir.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { storeRelocator } from '../../src/elf/index.ts';
import { narDigest } from '../../src/store/nar/write.ts';
import { classify, findStoreRefs, planFile, rewriteLinkTarget, rewriteRefs } from '../../src/store/relocate-text.ts';
import { type ElfRelocator, relocateTree } from '../../src/store/relocate-tree.ts';

const FROM = '/nix/store';
const H1 = '0c6l5hhy7lrhlfzxjx6bf0xqmnhz8gzi-bash-5.1';
const H2 = '1b9p07z77phvv2hf6gm9f28syp39f1ag-hello-2.12';

// No ELF file is in these trees; an ELF engine call would mean a text or binary file was misclassified.
const noElf: ElfRelocator = () => {
  throw new Error('the ELF engine must not be called for non-ELF files');
};

test('text rewriting only touches references that start a path, so a second pass is a no-op', () => {
  const to = '/tmp/nix/store';
  const src = Buffer.from(`#!${FROM}/${H1}/bin/sh\nPATH=${FROM}/${H1}/bin:/usr/bin\nx="${FROM}"\nkeep=/opt/nix/store/x\nkeep2=${FROM}x\n`);
  const once = rewriteRefs(src, FROM, to);
  assert.ok(once);
  assert.equal(once.count, 3);
  assert.equal(once.out.toString(), `#!${to}/${H1}/bin/sh\nPATH=${to}/${H1}/bin:/usr/bin\nx="${to}"\nkeep=/opt/nix/store/x\nkeep2=${FROM}x\n`);
  // the trap: /tmp/nix/store contains /nix/store
  assert.equal(rewriteRefs(once.out, FROM, to), null);
  assert.deepEqual(findStoreRefs(once.out, FROM), []);
  assert.equal(rewriteRefs(src, FROM, FROM), null);
  assert.equal(findStoreRefs(Buffer.from(`${FROM}`), FROM).length, 1);
});

test('symlink targets move when absolute into the old store and stay otherwise', () => {
  const to = '/tmp/nix/store';
  assert.equal(rewriteLinkTarget(`${FROM}/${H1}/bin/bash`, FROM, to), `${to}/${H1}/bin/bash`);
  assert.equal(rewriteLinkTarget(FROM, FROM, to), to);
  assert.equal(rewriteLinkTarget(`${to}/${H1}/bin/bash`, FROM, to), null);
  assert.equal(rewriteLinkTarget('../lib/libfoo.so', FROM, to), null);
  assert.equal(rewriteLinkTarget('/nix/storefront', FROM, to), null);
});

test('classification and the binary report', () => {
  assert.equal(classify(Buffer.from('plain\n')), 'text');
  assert.equal(classify(Buffer.from([1, 0, 2])), 'binary');
  const elfHeader = Buffer.alloc(64);
  elfHeader.write('\x7fELF', 'latin1');
  assert.equal(classify(elfHeader), 'elf');
  const bin = Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(`${FROM}/${H2}/share/locale`), Buffer.from([0, 9])]);
  const plan = planFile(bin, FROM, '/tmp/nix/store', noElf);
  assert.equal(plan.kind, 'binary');
  assert.equal(plan.content, undefined);
  assert.deepEqual(plan.unrewritable, [{ offset: 3, string: `${FROM}/${H2}/share/locale` }]);
});

async function syntheticStore(root: string): Promise<string> {
  const src = path.join(root, 'unpacked', 'store');
  const bash = path.join(src, H1);
  const hello = path.join(src, H2);
  await fs.mkdir(path.join(bash, 'bin'), { recursive: true });
  await fs.mkdir(path.join(hello, 'bin'), { recursive: true });
  await fs.mkdir(path.join(hello, 'lib', 'pkgconfig'), { recursive: true });
  await fs.writeFile(path.join(bash, 'bin', 'sh'), 'not really a shell\n', { mode: 0o555 });
  await fs.writeFile(path.join(hello, 'bin', 'hello'), `#!${FROM}/${H1}/bin/sh\nexec ${FROM}/${H2}/bin/.hello-wrapped "$@"\n`, {
    mode: 0o555,
  });
  await fs.writeFile(path.join(hello, 'bin', '.hello-wrapped'), Buffer.concat([Buffer.from([0, 0]), Buffer.from(`${FROM}/${H2}/share`), Buffer.from([0])]), {
    mode: 0o555,
  });
  await fs.writeFile(path.join(hello, 'lib', 'pkgconfig', 'hello.pc'), `prefix=${FROM}/${H2}\nlibdir=\${prefix}/lib\n`, { mode: 0o444 });
  await fs.link(path.join(hello, 'lib', 'pkgconfig', 'hello.pc'), path.join(hello, 'lib', 'hello-link.pc'));
  await fs.symlink(`${FROM}/${H1}/bin/sh`, path.join(hello, 'bin', 'sh'));
  await fs.symlink('hello', path.join(hello, 'bin', 'hi'));
  for (const d of [path.join(bash, 'bin'), bash, path.join(hello, 'lib', 'pkgconfig'), path.join(hello, 'lib'), path.join(hello, 'bin'), hello]) {
    await fs.chmod(d, 0o555);
  }
  return src;
}

test('a file that only looks like ELF: the engine refuses it by value, the plan keeps its reason and reports its references as binary data; a fault still throws', () => {
  // an ELF64 header whose one program header lies far past the end of the file
  const header = Buffer.alloc(64);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  header.writeUInt16LE(3, 16); // ET_DYN
  header.writeUInt16LE(62, 18); // x86-64
  header.writeBigUInt64LE(0xffffffn, 32); // e_phoff
  header.writeUInt16LE(64, 52); // e_ehsize
  header.writeUInt16LE(56, 54); // e_phentsize
  header.writeUInt16LE(1, 56); // e_phnum
  const fake = Buffer.concat([header, Buffer.from(`\0${FROM}/${H1}/lib\0`)]);
  const plan = planFile(fake, FROM, '/tmp/nix/store', storeRelocator, 'fake.so');
  assert.equal(plan.kind, 'elf');
  assert.equal(plan.elfPatched, false);
  assert.match(plan.elfError ?? '', /^fake\.so: /, 'the reason names the file');
  assert.deepEqual(
    plan.unrewritable.map((u) => u.string),
    [`${FROM}/${H1}/lib`],
  );
  assert.throws(() => planFile(fake, FROM, '/tmp/nix/store', noElf, 'fake.so'), /must not be called/);
});

test('relocateTree rewrites a synthetic store, keeps links and modes, reports binary data, and resumes', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-reloc-'));
  // a destination ending in /nix/store: every rewritten path contains the old store dir
  const to = path.join(root, 'prefix', 'nix', 'store');
  const src = await syntheticStore(root);
  const work = path.join(root, 'work');
  const seen: string[] = [];
  const r = await relocateTree({ sourceDir: src, from: FROM, to, workDir: work, relocateElf: noElf, onPath: (p) => seen.push(p.basename) });
  assert.deepEqual(seen.sort(), [H1, H2]);
  assert.deepEqual(await fs.readdir(src), []);
  assert.equal(r.counts.symlinks, 1);
  assert.equal(r.counts.textFiles, 2);
  assert.equal(r.counts.textRefs, 3);
  assert.equal(r.counts.unrewritable, 1);
  assert.equal(r.counts.elfPatched, 0);
  const byName = Object.fromEntries(r.paths.map((p) => [p.basename, p]));
  assert.equal(byName[H1]!.changed, false);
  assert.equal(byName[H2]!.changed, true);
  assert.deepEqual(byName[H2]!.hits, [{ file: path.join(to, H2, 'bin', '.hello-wrapped'), offset: 2, string: `${FROM}/${H2}/share` }]);

  const hello = path.join(to, H2);
  assert.equal(await fs.readFile(path.join(hello, 'bin', 'hello'), 'utf8'), `#!${to}/${H1}/bin/sh\nexec ${to}/${H2}/bin/.hello-wrapped "$@"\n`);
  assert.equal(await fs.readlink(path.join(hello, 'bin', 'sh')), `${to}/${H1}/bin/sh`);
  assert.equal(await fs.readlink(path.join(hello, 'bin', 'hi')), 'hello');
  assert.equal(await fs.readFile(path.join(hello, 'bin', 'sh'), 'utf8'), 'not really a shell\n'); // the link resolves
  const pc = await fs.stat(path.join(hello, 'lib', 'pkgconfig', 'hello.pc'));
  const pcLink = await fs.stat(path.join(hello, 'lib', 'hello-link.pc'));
  assert.equal(pc.ino, pcLink.ino, 'hard links survive the rewrite');
  assert.equal(await fs.readFile(path.join(hello, 'lib', 'hello-link.pc'), 'utf8'), `prefix=${to}/${H2}\nlibdir=\${prefix}/lib\n`);
  assert.equal(pc.mode & 0o777, 0o444);
  assert.equal((await fs.stat(path.join(hello, 'bin', 'hello'))).mode & 0o777, 0o555);
  assert.equal((await fs.stat(hello)).mode & 0o777, 0o555);
  assert.equal((await fs.stat(path.join(hello, 'lib'))).mode & 0o777, 0o555);
  assert.deepEqual(await fs.readdir(path.join(work, 'tmp')), []);
  // the NAR hash computed while writing is the one of the tree as it ended up
  for (const p of r.paths) {
    const d = await narDigest(path.join(to, p.basename));
    assert.equal(p.narHash, d.hash.toString('hex'), `${p.basename} NAR hash`);
    assert.equal(p.narSize, d.size);
  }

  // a re-run is a no-op that still lists every path
  const before = await narDigest(hello);
  const again = await relocateTree({ sourceDir: src, from: FROM, to, workDir: work, relocateElf: noElf });
  assert.deepEqual(
    again.paths.map((p) => p.basename),
    [H1, H2],
  );
  assert.deepEqual(again.counts, r.counts);

  // a path interrupted half-way (already rewritten, no marker) is relocated again without damage
  await fs.rm(path.join(work, 'paths', `${H2}.json`));
  await fs.writeFile(path.join(work, 'paths', `${H2}.started`), '');
  await fs.chmod(hello, 0o755);
  await fs.rename(hello, path.join(src, H2));
  const resumed = await relocateTree({ sourceDir: src, from: FROM, to, workDir: work, relocateElf: noElf });
  const h2 = resumed.paths.find((p) => p.basename === H2)!;
  assert.equal(h2.changed, true, 'an interrupted path counts as changed so its NAR hash is recomputed');
  assert.equal(h2.counts.textRefs, 0);
  assert.ok((await narDigest(hello)).hash.equals(before.hash));
  assert.equal(h2.narHash, before.hash.toString('hex'));
  await fs.chmod(path.join(root, 'prefix'), 0o755);
  await makeRemovable(root);
  await fs.rm(root, { recursive: true });
});

async function makeRemovable(dir: string): Promise<void> {
  const st = await fs.lstat(dir);
  if (!st.isDirectory()) return;
  await fs.chmod(dir, 0o755);
  for (const n of await fs.readdir(dir)) await makeRemovable(path.join(dir, n));
}
