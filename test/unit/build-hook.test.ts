// The build hook a prefix names: its Nix's once it has builders (libexec/nix/build-remote, else
// `nix __build-remote`, else none, and why); without builders none, or for a Nix that runs a hook
// whatever (2.8) one that declines every build; and the one line of the managed block that says it,
// rewritten in place with everything else kept.

import assert from 'node:assert/strict';
import { promises as fs, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { decliningHook, decliningHookPath, hasBuilders, hookForms, hookSetting, setsBuilders } from '../../src/prefix/build-hook.ts';
import { layout } from '../../src/prefix/layout.ts';
import { BEGIN, END, mergeNixConf, nixConfBlock, withBuildHook } from '../../src/prefix/nix-conf.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-build-hook-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A Nix store path with bin/nix of `binary` bytes and, if asked, libexec/nix/build-remote -> ../../bin/nix. */
async function fakeNix(name: string, binary: Buffer, libexec: 'link' | 'dangling' | 'none'): Promise<string> {
  const nix = path.join(tmp, name);
  await fs.mkdir(path.join(nix, 'bin'), { recursive: true });
  await fs.writeFile(path.join(nix, 'bin', 'nix'), binary, { mode: 0o755 });
  if (libexec !== 'none') {
    await fs.mkdir(path.join(nix, 'libexec', 'nix'), { recursive: true });
    await fs.symlink(libexec === 'link' ? '../../bin/nix' : '../../bin/gone', path.join(nix, 'libexec', 'nix', 'build-remote'));
  }
  return nix;
}

test('the hooks a Nix has: libexec/nix/build-remote first, else nix __build-remote, else none with the reason', async () => {
  const plain = Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(4096, 0x61), Buffer.from('build-remote\0/nix/build-remote\0')]);
  const v28 = await fakeNix('aaaa-nix-2.8.0', plain, 'link');
  assert.deepEqual(await hookForms(v28), { remote: `${v28}/libexec/nix/build-remote`, emptyIsNone: false });

  // the subcommand's name straddles the boundary between two chunks of the read
  const big = Buffer.alloc((1 << 20) + 4096, 0x62);
  big.write('__build-remote', (1 << 20) - 6, 'latin1');
  const v226 = await fakeNix('bbbb-nix-2.26.3', big, 'none');
  assert.deepEqual(await hookForms(v226), { remote: `${v226}/bin/nix __build-remote`, emptyIsNone: true });
  // both, as Debian packages 2.26: the libexec program, and an empty hook is none
  const both = await fakeNix('cccc-nix-both', big, 'link');
  assert.deepEqual(await hookForms(both), { remote: `${both}/libexec/nix/build-remote`, emptyIsNone: true });

  for (const [name, libexec] of [
    ['dddd-nix-2.8.0', 'none'],
    ['eeee-nix-2.8.0', 'dangling'],
  ] as const) {
    const none = await fakeNix(name, plain, libexec);
    assert.deepEqual(await hookForms(none), { why: `${name} has no libexec/nix/build-remote, and its nix does not know __build-remote`, emptyIsNone: false });
  }
  const unreadable = await hookForms(path.join(tmp, 'ffff-nix-missing'));
  assert.match(unreadable.remote === undefined ? unreadable.why : '', /bin\/nix cannot be read$/);
});

test("the build-hook setting: the Nix's hook with builders; without, none where empty means none, else the declining hook", async () => {
  const l = layout(path.join(tmp, 'setting'));
  const plain = Buffer.from('\x7fELF build-remote');
  const big = Buffer.from('\x7fELF __build-remote');
  const v28 = await fakeNix('gggg-nix-2.8.0', plain, 'link');
  const v226 = await fakeNix('hhhh-nix-2.26.3', big, 'none');
  const bare = await fakeNix('iiii-nix-2.8.0', plain, 'none');
  assert.equal(await hookSetting(l, v28, true), `${v28}/libexec/nix/build-remote`);
  assert.equal(await hookSetting(l, v226, true), `${v226}/bin/nix __build-remote`);
  assert.equal(await hookSetting(l, v226, false), '');
  await assert.rejects(fs.stat(decliningHookPath(l)), /ENOENT/, 'a Nix that skips an empty hook needs no hook of the prefix');
  for (const [nix, builders] of [
    [v28, false],
    [bare, false],
    // no hook to hand builds over with: they stay here (verify and builder add say why)
    [bare, true],
  ] as const) {
    assert.equal(await hookSetting(l, nix, builders), decliningHookPath(l), `${nix} ${builders}`);
  }
  const hook = decliningHookPath(l);
  assert.equal(await fs.readFile(hook, 'utf8'), decliningHook(l));
  assert.equal((await fs.stat(hook)).mode & 0o777, 0o755);
  assert.match(decliningHook(l), /^printf '# decline-permanently\\n' >&2$/m, 'the answer goes where Nix reads it, its stderr');
  assert.match(decliningHook(l), /^exec cat >\/dev\/null$/m, 'and it reads what Nix writes until Nix stops it');
});

test('builders: a builders line of the user, or the builders relonix builder add recorded', async () => {
  assert.equal(setsBuilders('builders = ssh://b x86_64-linux\n'), true);
  assert.equal(setsBuilders('  extra-builders=@/etc/nix/machines\n'), true);
  assert.equal(setsBuilders('builders =\nbuilders-use-substitutes = true\n'), false, 'an empty builders line sets none');
  assert.equal(setsBuilders('# builders = ssh://b\nmax-jobs = 1\n'), false, 'a comment sets none');
  const l = layout(path.join(tmp, 'prefix'));
  assert.equal(await hasBuilders(l, ''), false);
  assert.equal(await hasBuilders(l, 'builders = ssh://b\n'), true);
  await fs.mkdir(path.dirname(l.buildersFile), { recursive: true });
  await fs.writeFile(l.buildersFile, '{"builders":[]}\n');
  assert.equal(await hasBuilders(l, ''), true);
});

test('nix.conf: the managed block says build-hook = (none) unless given one, and withBuildHook rewrites only that line', () => {
  const none = nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal' });
  assert.match(none, /^build-hook =$/m);
  const hook = '/tmp/rx/store/aaaa-nix-2.8.0/libexec/nix/build-remote';
  const set = nixConfBlock({ caches: [], trustedKeys: [], journal: 'wal', buildHook: hook });
  assert.match(set, new RegExp(`^build-hook = ${hook}$`, 'm'));

  // the user's own build-hook line, after the block, stays as it is: it wins, as Nix reads it later
  const user = 'max-jobs = 4\nbuild-hook = /my/hook\n';
  const conf = mergeNixConf(user, none);
  const withHook = withBuildHook(conf, hook);
  assert.equal(withHook, mergeNixConf(user, set));
  assert.equal(withBuildHook(withHook, hook), withHook, 'the same hook again changes nothing');
  assert.equal(withBuildHook(withHook, ''), conf, 'back to none');
  assert.equal(withBuildHook(user, hook), user, 'no managed block (not bootstrapped yet): left for the bootstrap to write');

  // a block an older relonix wrote, without the line: it is added at the end of the block
  const old = `${BEGIN}\nsandbox = false\n${END}\n${user}`;
  const added = withBuildHook(old, hook);
  assert.ok(added.startsWith(`${BEGIN}\nsandbox = false\n`) && added.endsWith(`build-hook = ${hook}\n${END}\n${user}`), added);
  assert.equal(withBuildHook(added, hook), added);
});
