// Relocating a real ELF program (the host's /bin/true, as if built for /nix/store): it still runs
// through the relocated interpreter path, and readelf sees the new one.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { rewriteRefs } from '../../src/store/relocate-text.ts';
import { relocateTree } from '../../src/store/relocate-tree.ts';
import { removePrefix } from '../helpers/paths.ts';

const FROM = '/nix/store';

test('ELF files get interpreter and RUNPATH moved by the ELF engine and still run; stale strings are not reported', async () => {
  const { editElf, readElf, relocateElf } = await import('../../src/elf/index.ts');
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-reloc-elf-'));
  const to = path.join(root, 'prefix', 'nix', 'store');
  const src = path.join(root, 'unpacked', 'store');
  const glibc = '3ydhd6yn7x6s0g3awdd5cvsmqbvvqlgq-glibc-2.36';
  const coreutils = 'bb2ncvxa2n9ax0byxh7a8bgw5lbq3czz-true-1';
  await fs.mkdir(path.join(src, coreutils, 'bin'), { recursive: true });
  await fs.mkdir(path.join(to, glibc, 'lib'), { recursive: true });
  // the loader "in the store" is the host's, reached through the relocated path
  await fs.symlink('/lib64/ld-linux-x86-64.so.2', path.join(to, glibc, 'lib', 'ld-linux-x86-64.so.2'));
  const asBuilt = editElf(await fs.readFile('/bin/true'), {
    interpreter: `${FROM}/${glibc}/lib/ld-linux-x86-64.so.2`,
    rpath: `${FROM}/${glibc}/lib:/usr/lib/x86_64-linux-gnu`,
  });
  assert.ok(asBuilt);
  await fs.writeFile(path.join(src, coreutils, 'bin', 'true'), asBuilt, { mode: 0o555 });
  const r = await relocateTree({ sourceDir: src, from: FROM, to, workDir: path.join(root, 'work'), relocateElf });
  assert.equal(r.counts.elfPatched, 1);
  assert.deepEqual(r.paths[0]!.hits, [], 'the old interpreter and RUNPATH strings left in .dynstr are not references');
  const bin = path.join(to, coreutils, 'bin', 'true');
  const info = readElf(await fs.readFile(bin));
  assert.equal(info.interpreter, `${to}/${glibc}/lib/ld-linux-x86-64.so.2`);
  assert.equal(info.runpath, `${to}/${glibc}/lib:/usr/lib/x86_64-linux-gnu`);
  execFileSync(bin); // runs through the relocated interpreter path
  assert.equal(execFileSync('readelf', ['-l', bin]).toString().includes(`[Requesting program interpreter: ${to}/${glibc}`), true);
  // a second pass changes nothing
  const again = relocateElf(await fs.readFile(bin), (s) => rewriteRefs(Buffer.from(s), FROM, to)?.out.toString() ?? s);
  assert.equal(again, null);
  await removePrefix(root);
});
