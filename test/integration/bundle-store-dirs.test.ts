// A bundle from a prefix whose store dir is not 10 bytes long (the prefix's own store/ under a long
// temporary path): its run dir is as long as that store dir, relonix bundle says so, and the
// bundle runs on a second host. The installables here are an expression and a path inside a store
// path, which names the entry by itself.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { bootstrappedPrefix } from '../helpers/build-rig.ts';
import { NOBODY_UID, relonix } from '../helpers/cli.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { removePrefix } from '../helpers/paths.ts';
import { BUNDLE, onSecondHost, sections } from '../helpers/second-host.ts';
import { requireRoot } from '../helpers/tools.ts';

forEachNix(({ fixture, test }) => {
  requireRoot('a second host is a mount namespace, and its user a uid of its own');

  let prefix: string;
  let top: string;
  let storeDir: string;

  const EXPR = `derivation {
  name = "hello-dirs";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  args = [ "-c" ''
    mkdir -p $out/bin $out/share
    echo "message from $out" > $out/share/msg
    printf '#!/bin/sh\\ncat %s/share/msg\\necho "args: $*"\\nexit 3\\n' $out > $out/bin/hello
    chmod +x $out/bin/hello
  '' ];
}`;

  before(async () => {
    ({ prefix, top } = await bootstrappedPrefix(NOBODY_UID, `bundle-dirs-${fixture}`, fixture));
    await fs.chmod(top, 0o755);
    storeDir = JSON.parse((await relonix(NOBODY_UID, ['status', '--prefix', prefix, '--json'])).stdout).storeDir;
  });

  after(async () => {
    if (top) await removePrefix(top);
  });

  test('a store dir that is not 10 bytes gets a run dir of its own length, which relonix bundle names, and the bundle runs on another host', async () => {
    assert.notEqual(storeDir.length, 10);
    const out = path.join(top, 'out');
    await fs.mkdir(out);
    await fs.chown(out, NOBODY_UID, NOBODY_UID);
    const made = await relonix(NOBODY_UID, ['bundle', '--prefix', prefix, EXPR, '--entry', 'bin/hello', '-o', path.join(out, 'hello.run')]);
    assert.equal(made.code, 0, `${made.stdout}\n${made.stderr}`);
    const runDir = /^run dir: (\S+)/m.exec(made.stdout)![1]!;
    assert.equal(runDir.length, storeDir.length);
    assert.match(runDir, /^\/tmp\/[0-9a-z]+$/);
    assert.match(
      made.stdout,
      new RegExp(
        `run dir: ${runDir} \\(${storeDir.length} bytes, as long as the store dir ${storeDir}, which is not the usual 10: RELONIX_RUN_DIR must be ${storeDir.length} bytes too\\)`,
      ),
    );

    // the same program named by its path in the store: no --entry, the same run dir (the same closure)
    const built = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-build', '--no-out-link', '-E', EXPR]);
    assert.equal(built.code, 0, built.stderr);
    const outPath = built.stdout.trim();
    const again = await relonix(NOBODY_UID, ['bundle', '--prefix', prefix, `${outPath}/bin/hello`, '-o', path.join(out, 'again.run')]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`entry ${path.basename(outPath)}/bin/hello\\n`));
    assert.equal(/^run dir: (\S+)/m.exec(again.stdout)![1], runDir);

    const other = `/var/tmp/${'x'.repeat(storeDir.length - 9)}`;
    const s = sections(
      (
        await onSecondHost({
          bundle: path.join(out, 'hello.run'),
          script: `echo @@run; ${BUNDLE} a b; echo "code $?"
echo @@short; RELONIX_RUN_DIR=/var/tmp/x ${BUNDLE} 2>&1; echo "code $?"
echo @@other; RELONIX_RUN_DIR=${other} ${BUNDLE}; echo "code $?"`,
          after: `echo @@store; grep -rl --binary-files=text ${storeDir} ${runDir} ${other}; echo "grep $?"`,
        })
      ).stdout,
    );
    assert.equal(s.get('run'), `message from ${runDir}/${path.basename(outPath)}\nargs: a b\ncode 3`);
    assert.match(
      s.get('short')!,
      new RegExp(`RELONIX_RUN_DIR=/var/tmp/x is 10 bytes; this bundle needs a dir of exactly ${storeDir.length}[\\s\\S]*code 126$`),
    );
    assert.equal(s.get('other'), `message from ${other}/${path.basename(outPath)}\nargs: \ncode 3`);
    assert.equal(s.get('store'), 'grep 1', 'nothing names the build store dir');
  });
});
