// What the fixture generator reads of Debian: apt-cache's stanzas (versions, hashes, the packages a
// package depends on), the file names apt-get download gives, and upstream versions.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { debFileName, dependsNames, parseStanzas } from '../../src/demo/apt.ts';
import { upstreamVersion } from '../../src/demo/debian-nix.ts';

const SHOW = `Package: nix-bin
Source: nix
Version: 2.26.3+dfsg-1
Architecture: amd64
Depends: bash-static, perl:any, libarchive13t64 (>= 3.5.0), libc6 (>= 2.38) | libc6-udeb, libgc1 (>= 1:8.0)
Pre-Depends: init-system-helpers (>= 1.54~)
Recommends: nix-setup-systemd
Description: Purely functional package manager (binaries)
 a continued line: Depends: not-a-dependency
SHA256: 06e8338eb0ca303802fcfe4579e184dd308d9fa89f7f0aae5974e21fac8178fb

Package: libgc1
Version: 1:8.2.8-1
Architecture: amd64
SHA256: aa

Package: libgc1
Version: 1:8.2.6-1
Architecture: amd64
SHA256: bb

Package: debconf
Version: 1.5.91
Architecture: all
SHA256: cc
`;

test('apt-cache show: each package once, the first stanza winning, Pre-Depends and Depends as bare names', () => {
  const p = parseStanzas(SHOW);
  assert.deepEqual([...p.keys()], ['nix-bin', 'libgc1', 'debconf']);
  assert.deepEqual(p.get('nix-bin'), {
    name: 'nix-bin',
    version: '2.26.3+dfsg-1',
    sha256: '06e8338eb0ca303802fcfe4579e184dd308d9fa89f7f0aae5974e21fac8178fb',
    arch: 'amd64',
    depends: ['init-system-helpers', 'bash-static', 'perl', 'libarchive13t64', 'libc6', 'libgc1'],
  });
  assert.equal(p.get('libgc1')!.version, '1:8.2.8-1', 'the candidate, printed first');
  assert.deepEqual(p.get('debconf')!.depends, []);
  assert.deepEqual(dependsNames(''), []);
  assert.deepEqual(dependsNames('a (>= 1) | b, c:any,d'), ['a', 'c', 'd']);
});

test('the names apt-get download writes, and the version Nix says of itself', () => {
  assert.equal(debFileName({ name: 'libgc1', version: '1:8.2.8-1', arch: 'amd64' }), 'libgc1_1%3a8.2.8-1_amd64.deb');
  assert.equal(debFileName({ name: 'debconf', version: '1.5.91', arch: 'all' }), 'debconf_1.5.91_all.deb');
  assert.equal(upstreamVersion('2.26.3+dfsg-1'), '2.26.3');
  assert.equal(upstreamVersion('2.8.0-1.1+b1'), '2.8.0');
  assert.equal(upstreamVersion('1:2.8.0-1'), '2.8.0');
  assert.throws(() => upstreamVersion('unstable'), /not a Debian version of a release/);
});
