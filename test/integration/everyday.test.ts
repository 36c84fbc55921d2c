// What a user does first with a bootstrapped prefix, on a host that never had Nix (the test machine's
// own Nix hidden behind tripwires), as a uid with no passwd entry: a channel and nix-env, nix-shell,
// garbage collection, optimising, a flake with nix build and nix profile, nix log, and the bin/
// wrappers from a plain PATH.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { NOBODY_UID, relonix, shAs } from '../helpers/cli.ts';
import { type Mirror, serveFixture } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixFor, removePrefix } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

const HELLO_CHANNEL = `{ system ? builtins.currentSystem }: {
  hello = derivation {
    name = "hello-1.0"; inherit system; builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/bin && printf '#!/bin/sh\\\\necho hello from the channel\\\\n' > $out/bin/hello && /bin/chmod +x $out/bin/hello" ];
  };
}
`;

const FLAKE = `{
  outputs = { self }: {
    packages.x86_64-linux.default = derivation {
      name = "flake-hello"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "echo building the flake; /bin/mkdir -p $out/bin && printf '#!/bin/sh\\\\necho hello from the flake\\\\n' > $out/bin/flake-hello && /bin/chmod +x $out/bin/flake-hello" ];
    };
  };
}
`;

const FLAKES = "--extra-experimental-features 'nix-command flakes'";

forEachNix(
  ({ fixture, test }) => {
    let mirror: Mirror;
    let top: string;
    let prefix: string;

    /** A shell as the unprivileged uid, with the prefix's profile script sourced. */
    function inPrefix(script: string) {
      return shAs(NOBODY_UID, `set -e; . ${prefix}/etc/profile.d/relonix.sh; ${script}`);
    }

    before(async () => {
      requireTool('setpriv', 'util-linux');
      requireTool('tar', 'tar');
      requireRoot('it switches to uid 4242 and hides the host Nix in a mount namespace');
      mirror = await serveFixture(fixture);
      prefix = await prefixFor(NOBODY_UID, 'everyday');
      top = path.dirname(prefix);
      const r = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url]);
      assert.equal(r.code, 0, `bootstrap with the host Nix hidden:\n${r.stdout}\n${r.stderr}`);
      // the inputs a user would have: a channel tarball, a flake, a shell expression
      await fs.mkdir(path.join(top, 'chan', 'mychan'), { recursive: true });
      await fs.writeFile(path.join(top, 'chan', 'mychan', 'default.nix'), HELLO_CHANNEL);
      execFileSync('tar', ['-cJf', path.join(top, 'mychan.tar.xz'), '-C', path.join(top, 'chan'), 'mychan']);
      await fs.mkdir(path.join(top, 'flake'));
      await fs.writeFile(path.join(top, 'flake', 'flake.nix'), FLAKE);
      await fs.writeFile(
        path.join(top, 'shell.nix'),
        'derivation { name = "shell-env"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; greeting = "hi from nix-shell"; }\n',
      );
      execFileSync('chown', [
        '-R',
        `${NOBODY_UID}:${NOBODY_UID}`,
        path.join(top, 'chan'),
        path.join(top, 'mychan.tar.xz'),
        path.join(top, 'flake'),
        path.join(top, 'shell.nix'),
      ]);
    });

    after(async () => {
      await mirror?.close();
      if (top) await removePrefix(top);
    });

    test('a channel: nix-channel --add/--update from a local tarball, nix-env -iA, and the program runs from the profile', async () => {
      const r = await inPrefix(`nix-channel --add file://${top}/mychan.tar.xz mychan; nix-channel --update; nix-env -iA mychan.hello; command -v hello; hello`);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.includes(`${prefix}/var/nix/profiles/default/bin/hello\n`), r.stdout);
      assert.match(r.stdout, /^hello from the channel$/m);
    });

    test('nix-shell with a local expression runs a command in its environment', async () => {
      const r = await inPrefix(`nix-shell ${top}/shell.nix --run 'echo "$greeting"'`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^hi from nix-shell$/m);
    });

    test('a flake with no inputs: nix build, nix profile install, and nix log of what it built', async () => {
      const r = await inPrefix(
        `nix ${FLAKES} build path:${top}/flake --no-link --json; nix ${FLAKES} profile install path:${top}/flake --profile ${top}/flake-profile; ${top}/flake-profile/bin/flake-hello; nix ${FLAKES} log path:${top}/flake`,
      );
      assert.equal(r.code, 0, r.stderr);
      const built = JSON.parse(r.stdout.split('\n')[0]!) as { outputs: { out: string } }[];
      assert.ok(built[0]!.outputs.out.startsWith(`${prefix}/store/`), r.stdout);
      assert.match(r.stdout, /^hello from the flake$/m);
      // the log of the build, read back by nix log from the prefix's log dir
      assert.match(r.stdout, /^building the flake$/m);
    });

    test('garbage collection keeps the profile closure and removes the rest; optimise; the store still verifies', async () => {
      const expr = 'derivation { name = "garbage"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo junk > $out" ]; }';
      const built = await inPrefix(`nix-build --no-out-link -E '${expr}'`);
      assert.equal(built.code, 0, built.stderr);
      const garbage = built.stdout.trim().split('\n').pop()!;
      assert.ok(garbage.startsWith(`${prefix}/store/`), garbage);
      const r = await inPrefix(
        'nix-collect-garbage -d; nix-env --list-generations | wc -l; nix-store --gc; nix-store --optimise; nix-store --verify --check-contents; nix --version; hello',
      );
      assert.equal(r.code, 0, r.stderr);
      await assert.rejects(fs.lstat(garbage), 'the unreferenced build output is gone');
      assert.match(r.stdout, /^\s*1$/m, 'only the current generation is left');
      assert.ok(r.stdout.includes(`nix (Nix) ${mirror.fx.version}\n`), r.stdout);
      assert.match(r.stdout, /^hello from the channel$/m);
      assert.match(r.stderr, /freed by hard-linking/);
    });

    test('the bin/ wrappers run the prefix Nix from a plain PATH, with no environment set up', async () => {
      const r = await shAs(
        NOBODY_UID,
        `${prefix}/bin/nix-instantiate --eval -E builtins.storeDir && PATH=${prefix}/bin:/usr/bin:/bin nix-store -q --references ${prefix}/var/nix/profiles/default && PATH=${prefix}/bin:/usr/bin:/bin nix-build --no-out-link -E 'derivation { name = "via-wrapper"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }'`,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.includes(`"${prefix}/store"`), r.stdout);
      assert.match(r.stdout, new RegExp(`^${prefix}/store/[0-9a-z]{32}-via-wrapper$`, 'm'));
    });

    test('relonix run: a command not in the prefix exits 127, one that cannot be run 126, each said once with the fix; otherwise its own code', async () => {
      const missing = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'no-such-command']);
      assert.equal(missing.code, 127, missing.stderr);
      assert.equal(missing.stderr.match(/^relonix: error: cannot run no-such-command: not found in the prefix's PATH$/gm)?.length, 1, missing.stderr);
      assert.match(missing.stderr, /^ {2}fix: is no-such-command installed in the prefix\? /m);
      const unrunnable = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', `${prefix}/var/relonix/state.json`]);
      assert.equal(unrunnable.code, 126, unrunnable.stderr);
      assert.match(unrunnable.stderr, /cannot run .*state\.json: permission denied/);
      const ok = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'sh', '-c', 'exit 7']);
      assert.equal(ok.code, 7, "the command's own code");
    });
  },
  { concurrently: true },
);
