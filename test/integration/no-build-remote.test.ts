// A Nix 2.8 whose closure lacks libexec/nix/build-remote, the build hook 2.8 runs before every build,
// builders or not: bootstrapped as a uid with no passwd entry, it verifies and builds, because while
// the prefix has no builders its hook is the prefix's own, which declines every build. Its default
// hook is missing indeed, and 2.8 tries to execute an empty one: with either, nothing builds.
// builder add refuses it with the reason, and a prefix with builders that gets such a Nix fails
// verify with the reason, not with the dead hook's "unexpected EOF".

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { EXIT, NOBODY_UID, relonix } from '../helpers/cli.ts';
import { mirrorFor } from '../helpers/mirror.ts';
import { prefixList } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

before(() => {
  requireTool('setpriv', 'util-linux');
  requireRoot('it switches to uid 4242 and hides the host Nix in a mount namespace');
});
const mirror = mirrorFor('2.8-no-build-remote');
const prefixes = prefixList();
after(() => prefixes.removeAll());

const expr = (name: string) => `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo built > $out" ]; }`;

test('a Nix 2.8 without libexec/nix/build-remote verifies and builds; builder add and a prefix with builders refuse it with the reason', async () => {
  const prefix = await prefixes.add(NOBODY_UID, 'no-hook');
  const nix = path.join(prefix, 'store', path.basename(mirror.fx.nixPath));
  const boot = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
  assert.equal(boot.code, EXIT.ok, `${boot.stdout}\n${boot.stderr}`);
  await assert.rejects(fs.lstat(path.join(nix, 'libexec')), /ENOENT/, 'the tarball has no libexec/');
  const confFile = path.join(prefix, 'etc', 'nix', 'nix.conf');
  const hookLine = `build-hook = ${prefix}/var/relonix/no-builders-hook`;
  const conf = async () => (await fs.readFile(confFile, 'utf8')).split('\n');
  assert.ok((await conf()).includes(hookLine));

  const run = (args: string[]) => relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', ...args]);
  const built = await run(['nix-build', '--no-out-link', '-E', expr('no-hook')]);
  assert.equal(built.code, 0, built.stderr);
  assert.equal(await fs.readFile(built.stdout.trim(), 'utf8'), 'built\n');
  // what the prefix would do with Nix 2.8's own default, the hook under NIX_LIBEXEC_DIR, or with an empty one
  for (const [hook, name, executed] of [
    ['"$NIX_LIBEXEC_DIR/nix/build-remote"', 'dead-hook', `${nix}/libexec/nix/build-remote`],
    ["''", 'empty-hook', ''],
  ] as const) {
    const dead = await run(['sh', '-c', `nix-build --no-out-link --option build-hook ${hook} -E '${expr(name)}'`]);
    assert.notEqual(dead.code, 0, `with build-hook ${hook} nothing builds`);
    const said = stripVTControlCharacters(dead.stderr);
    assert.ok(said.includes(`executing '${executed}': No such file or directory`), said);
    assert.match(said, /unexpected EOF/);
  }

  const add = await relonix(undefined, ['builder', 'add', '--prefix', prefix, 'ssh://builder@127.0.0.1:1']);
  assert.equal(add.code, EXIT.preflight, add.stderr);
  const why = `${path.basename(nix)} has no libexec/nix/build-remote, and its nix does not know __build-remote`;
  assert.ok(add.stderr.includes(`the Nix in ${prefix} has no build hook, which remote builds need: ${why}`), add.stderr);
  assert.match(add.stderr, /fix: bootstrap the prefix from a Nix that has one/);
  assert.equal((await relonix(NOBODY_UID, ['builder', 'list', '--prefix', prefix])).stdout, '', 'nothing was recorded');
  assert.ok((await conf()).includes(hookLine));

  // builders of the user's own, then a bootstrap that verifies again (another --url is another input)
  await fs.appendFile(confFile, 'builders = ssh://builder@127.0.0.1:1 x86_64-linux\n');
  const again = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', `${mirror.url}?again=1`]);
  assert.equal(again.code, EXIT.preflight, `${again.stdout}\n${again.stderr}`);
  assert.match(again.stderr, /stage verify/);
  assert.ok(again.stderr.includes(`has no build hook, which remote builds need: ${why}`), again.stderr);
  assert.match(again.stderr, /relonix builder remove URL \(and drop builders from your own nix\.conf lines\)/);
  assert.doesNotMatch(again.stderr, /unexpected EOF/);
  // and meanwhile the builds stay here
  assert.ok((await conf()).includes(hookLine));
  const still = await run(['nix-build', '--no-out-link', '-E', expr('still-here')]);
  assert.equal(still.code, 0, still.stderr);
});
