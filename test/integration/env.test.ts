// The environment and nix.conf as the real sh and Debian's Nix read them, and the verify stage's
// helpers on a real binary.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { applyConfigure } from '../../src/bootstrap/configure-prefix.ts';
import { relocateRecords } from '../../src/bootstrap/stages/register.ts';
import { elfInterpreter, foreignLibraries, interpreterOfFile } from '../../src/bootstrap/verify-nix.ts';
import { envScripts, renderEnv } from '../../src/prefix/environment.ts';
import { layout } from '../../src/prefix/layout.ts';

test('sh output survives eval with quotes, spaces and dollars in values', () => {
  const vars = { A: 'it\'s a $HOME `x` "q"', B: '/plain/path', C: '' };
  const text = renderEnv(vars, 'sh');
  const out = execFileSync('sh', ['-c', `${text}\nprintf '%s\\n' "$A" "$B" "[$C]"`], { env: {} }).toString();
  assert.equal(out, `${vars.A}\n/plain/path\n[]\n`);
});

test('configure writes nix.conf that the real nix reads, and profile scripts that work with an empty environment', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-conf-'));
  const l = layout(path.join(dir, 'p x'));
  await fs.mkdir(l.confDir, { recursive: true });
  await fs.writeFile(l.confFile, 'max-jobs = 3\n');
  await applyConfigure(l, { caches: ['http://127.0.0.1:9/cache'], trustedKeys: ['test-1:AAAA'] }, '/st/nix', '/st/cacert');
  const conf = await fs.readFile(l.confFile, 'utf8');
  assert.match(conf, /max-jobs = 3/);
  // Debian's nix parses our file: the settings are what nix itself reports
  const shown = execFileSync('nix', ['show-config', '--extra-experimental-features', 'nix-command'], {
    env: { PATH: '/usr/bin:/bin', NIX_CONF_DIR: l.confDir, HOME: dir, USER: 'x' },
  }).toString();
  assert.match(shown, /^sandbox = false$/m);
  assert.match(shown, /^max-jobs = 3$/m);
  assert.match(shown, /^substituters = http:\/\/127\.0\.0\.1:9\/cache$/m);
  const script = `. '${l.envScript}'; printf '%s\\n' "$NIX_STORE_DIR" "$USER" "$HOME" "$PATH"`;
  const out = execFileSync('env', ['-i', 'PATH=/usr/bin:/bin', 'sh', '-c', script]).toString().split('\n');
  assert.equal(out[0], l.storeDir);
  assert.ok(out[1]!.length > 0, 'USER is filled in');
  assert.equal(out[2], path.join(l.prefix, 'home'));
  assert.equal(out[3], `${l.profile}/bin:/st/nix/bin:/usr/bin:/bin`);
  const { fish } = envScripts(l, '/st/nix');
  assert.match(fish, /set -gx PATH '.*\/profiles\/default\/bin' '\/st\/nix\/bin' \$PATH;/);
  await fs.rm(dir, { recursive: true });
});

test('verify helpers: interpreter of a real binary, foreign libraries in ld.so --list output', async () => {
  assert.equal(elfInterpreter(await fs.readFile('/bin/sh')), '/lib64/ld-linux-x86-64.so.2');
  assert.equal(elfInterpreter(Buffer.from('#!/bin/sh\n')), undefined);
  // from the file: its first bytes, or the whole file when the interpreter lies past them
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-interp-'));
  try {
    assert.equal(await interpreterOfFile('/bin/sh'), '/lib64/ld-linux-x86-64.so.2');
    const far = Buffer.concat([await fs.readFile('/bin/sh'), Buffer.alloc(200 * 1024)]);
    const phoff = Number(far.readBigUInt64LE(0x20));
    const at = far.length - 100;
    far.write('/far/ld.so\0', at, 'latin1');
    for (let i = 0; i < far.readUInt16LE(0x38); i++) {
      const ph = phoff + i * far.readUInt16LE(0x36);
      if (far.readUInt32LE(ph) !== 3) continue; // PT_INTERP
      far.writeBigUInt64LE(BigInt(at), ph + 8);
      far.writeBigUInt64LE(11n, ph + 32);
    }
    await fs.writeFile(path.join(dir, 'far'), far);
    assert.equal(await interpreterOfFile(path.join(dir, 'far')), '/far/ld.so');
    await fs.writeFile(path.join(dir, 'script'), '#!/bin/sh\n');
    assert.equal(await interpreterOfFile(path.join(dir, 'script')), undefined);
  } finally {
    await fs.rm(dir, { recursive: true });
  }
  const list = [
    '\tlinux-vdso.so.1 (0x00007ffd)',
    '\tlibnixstore.so => /tmp/n/store/aaa-nix/lib/libnixstore.so (0x7f)',
    '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)',
    '\tlibgone.so => not found',
    '\t/tmp/n/store/bbb-glibc/lib/ld-linux-x86-64.so.2 (0x7f)',
  ].join('\n');
  assert.deepEqual(foreignLibraries(list, '/tmp/n/store'), ['/lib/x86_64-linux-gnu/libc.so.6', 'libgone.so => not found']);
  const recs = relocateRecords(
    [{ path: '/nix/store/a-x', narHash: 'h', narSize: 1, deriver: '', references: ['/nix/store/a-x', '/nix/store/b-y'] }],
    '/nix/store',
    '/t/nix/store',
  );
  assert.deepEqual(recs[0], { path: '/t/nix/store/a-x', narHash: 'h', narSize: 1, deriver: '', references: ['/t/nix/store/a-x', '/t/nix/store/b-y'] });
});
