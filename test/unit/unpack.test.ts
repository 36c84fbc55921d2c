// What readTarballInfo needs in an unpacked tarball, and what it says when a part is missing.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseTarballDirName, readTarballInfo } from '../../src/bootstrap/tarball.ts';
import { removeTree } from '../../src/util/fs.ts';

let tmp: string;
const top = 'nix-2.8.0-x86_64-linux';

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-unpack-'));
});
after(async () => {
  await removeTree(tmp);
});

test('tarball: readTarballInfo says what is missing', async () => {
  assert.deepEqual(parseTarballDirName('nix-2.24.10-x86_64-linux'), { version: '2.24.10', system: 'x86_64-linux' });
  assert.deepEqual(parseTarballDirName('nix-2.25.0pre20241101_abc-aarch64-darwin'), { version: '2.25.0pre20241101_abc', system: 'aarch64-darwin' });
  assert.equal(parseTarballDirName('something-else'), undefined);
  const root = path.join(tmp, 'info', top);
  await fs.mkdir(path.join(root, 'store'), { recursive: true });
  await assert.rejects(readTarballInfo(root), /install is missing/);
  const nix = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nix-2.8.0';
  const ca = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nss-cacert-3.0';
  await fs.writeFile(path.join(root, 'install'), `#!/bin/sh\nnix="${nix}"\n`);
  await assert.rejects(readTarballInfo(root), /no cacert=/);
  await fs.writeFile(path.join(root, 'install'), `#!/bin/sh\nnix="${nix}"\ncacert="${ca}"\n`);
  await assert.rejects(readTarballInfo(root), /\.reginfo is missing/);
  await fs.writeFile(path.join(root, '.reginfo'), `${nix}\nsha256:x\n12\n\n0\n`);
  await assert.rejects(readTarballInfo(root), /does not register/);
  await fs.writeFile(path.join(root, '.reginfo'), `${nix}\nsha256:x\n12\n\n0\n${ca}\nsha256:y\n3\n\n0\n`);
  await assert.rejects(readTarballInfo(root), /not in store/);
  await fs.mkdir(path.join(root, 'store', path.basename(nix)));
  await fs.mkdir(path.join(root, 'store', path.basename(ca)));
  const info = await readTarballInfo(root);
  assert.equal(info.nixPath, nix);
  assert.equal(info.reginfo.length, 2);
});
