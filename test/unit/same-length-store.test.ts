// A store dir outside the prefix, found by every command from the prefix's state, checked like the
// prefix; and relocation between store dirs of one length, which rewrites binary data in place.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { type PreflightFacts, planPreflight } from '../../src/bootstrap/stages/preflight.ts';
import { layout } from '../../src/prefix/layout.ts';
import { type ElfRelocator, planFile } from '../../src/store/relocate-text.ts';
import { isKind } from '../../src/util/errors.ts';

const FROM = '/nix/store';
const TO = '/tmp/store';
const H = '0c6l5hhy7lrhlfzxjx6bf0xqmnhz8gzi-bash-5.1';

const noElf: ElfRelocator = () => {
  throw new Error('store dirs of one length need no ELF surgery');
};

test('the store dir given to bootstrap is recorded in the state and found from the prefix alone', async () => {
  const top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-layout-'));
  try {
    const prefix = path.join(top, 'nix');
    assert.equal(layout(prefix).storeDir, path.join(prefix, 'store'), 'no state: PREFIX/store');
    assert.equal(layout(prefix, '/tmp/s0abc/').storeDir, '/tmp/s0abc', 'the flag wins, without its trailing slash');
    await fs.mkdir(path.join(prefix, 'var', 'relonix'), { recursive: true });
    await fs.writeFile(path.join(prefix, 'var', 'relonix', 'state.json'), JSON.stringify({ version: 1, storeDir: '/tmp/s0abc', stages: {} }));
    assert.equal(layout(prefix).storeDir, '/tmp/s0abc', 'every later command reads it from the state');
    assert.equal(layout(prefix, '/app/store').storeDir, '/app/store');
    for (const bad of ['store', '/', '/tmp//store', '/tmp/../tmp/store']) {
      assert.throws(
        () => layout(prefix, bad),
        (e) => isKind(e, 'usage'),
        bad,
      );
    }
    assert.throws(
      () => layout(prefix, top),
      (e) => isKind(e, 'usage'),
      'a store dir holding the prefix',
    );
  } finally {
    await fs.rm(top, { recursive: true, force: true });
  }
});

test('preflight refuses a store dir that goes through a symlink, cannot be written or run from, or is on another filesystem', () => {
  const ok: PreflightFacts = {
    prefix: '/tmp/p/nix',
    realPrefix: '/tmp/p/nix',
    writable: true,
    executable: true,
    freeBytes: 10 * 2 ** 30,
    fsType: 'ext4',
    hostSystem: 'x86_64-linux',
    store: { dir: '/tmp/store', real: '/tmp/store', writable: true, executable: true, sameFilesystem: true },
  };
  assert.equal(planPreflight(ok).ok, true);
  const store = ok.store!;
  const cases: [Partial<typeof store>, RegExp][] = [
    [{ real: '/private/tmp/store' }, /--store-dir \/private\/tmp\/store/],
    [{ writable: false, writeError: 'EACCES' }, /store dir you can create/],
    [{ executable: false, execError: 'EACCES' }, /noexec/],
    [{ sameFilesystem: false }, /one filesystem/],
  ];
  for (const [change, hint] of cases) {
    const plan = planPreflight({ ...ok, store: { ...store, ...change } });
    assert.equal(plan.ok, false);
    assert.equal(plan.problems.length, 1);
    assert.match(plan.problems[0]!.hint, hint);
  }
});

test('between store dirs of one length every reference moves in place, in binary data and ELF files too', () => {
  const bin = Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(`${FROM}/${H}/share/locale\0${FROM}\0-L${FROM}/${H}/lib`), Buffer.from([0, 9])]);
  const plan = planFile(bin, FROM, TO, noElf);
  assert.equal(plan.kind, 'binary');
  assert.deepEqual(plan.unrewritable, []);
  assert.equal(plan.rewritten, 3);
  assert.equal(plan.content!.length, bin.length, 'no byte moves');
  assert.equal(plan.content!.toString('latin1'), bin.toString('latin1').replaceAll(FROM, TO));

  const elf = Buffer.alloc(256);
  elf.write('\x7fELF', 'latin1');
  elf.write(`${FROM}/${H}/lib/ld-linux-x86-64.so.2\0`, 64, 'latin1');
  const e = planFile(elf, FROM, TO, noElf);
  assert.equal(e.kind, 'elf');
  assert.equal(e.elfPatched, true);
  assert.ok(e.content!.includes(`${TO}/${H}/lib/ld-linux`));
  assert.ok(!e.content!.includes(FROM));

  // a text file's flag moves too, which a longer store dir leaves alone (it contains /nix/store)
  const text = Buffer.from(`CFLAGS=-I${FROM}/${H}/include\n`);
  assert.equal(planFile(text, FROM, TO, noElf).content!.toString(), `CFLAGS=-I${TO}/${H}/include\n`);
  assert.equal(planFile(text, FROM, '/tmp/nix/store', noElf).content, undefined);
  // another length keeps binary data as it was, and reports what starts a path (not the flag)
  const longer = planFile(bin, FROM, '/tmp/nix/store', noElf);
  assert.equal(longer.content, undefined);
  assert.deepEqual(
    longer.unrewritable.map((h) => h.string),
    [`${FROM}/${H}/share/locale`, FROM],
  );
});
