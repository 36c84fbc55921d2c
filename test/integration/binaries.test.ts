// Binaries by default: a prefix whose store dir is as long as /nix/store (`<prefix>/s`) gets what
// upstream built, translated on demand, from every everyday command. The upstream is Debian's Nix as
// root at /nix/store, serving its builds of a test channel over loopback HTTP, signed with a key made
// here. The prefix is bootstrapped from the fixture tarball by a uid with no passwd entry, with the
// host's Nix hidden. Every builder appends its name and output path to an impure log outside the
// store: "zero local builds" is that log not growing for the prefix's store. Every test runs with
// both real Nixes in the prefix, each with a prefix and a copy of upstream's cache of its own.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync, watch } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IN_PROCESS_BYTES } from '../../src/cache/compress.ts';
import type { TranslatorStatus } from '../../src/translator/status.ts';
import { processAlive } from '../../src/util/proc.ts';
import { buildArgv } from '../helpers/build-rig.ts';
import { EXIT, NOBODY_UID, relonix, shAs } from '../helpers/cli.ts';
import { startServer } from '../helpers/http.ts';
import { type Mirror, serveFixture } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixFor, RELONIX, removePrefix, shortPrefix, tempDir } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';
import { buildUpstream, hostNix, namingNixStore, STORE_REF, serveUpstream, type UpstreamCache } from '../helpers/upstream.ts';
import { waitUntil } from '../helpers/wait.ts';

const FLAKES = "--extra-experimental-features 'nix-command flakes'";

/**
 * The channel both stores evaluate. A library, a program linking it, a script naming both, a
 * `__structuredAttrs` package, a minimal stdenv and runCommand (what `nix-shell -p` needs), a
 * package upstream never builds, packages whose upstream copies get tampered with, and a big one.
 */
function channel(log: string): string {
  return `{ system ? builtins.currentSystem, ... }:
let
  sh = name: script: derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-e" "-c" script ];
    PATH = "/usr/bin:/bin";
    impureLog = "${log}";
  };
  record = ''echo "built $name $out" >> "$impureLog"'';
  greeting = ./greeting.txt;
  small = name: sh name ''
    \${record}
    mkdir -p $out/bin
    printf '#!/bin/sh\\necho %s is genuine\\n' "$name" > $out/bin/\${name}
    chmod +x $out/bin/\${name}
  '';
  # random bytes, then the path itself: a NAR about as big compressed as not, with a reference to rewrite
  noise = name: bytes: sh name ''
    \${record}
    mkdir -p $out/share
    head -c \${toString bytes} /dev/urandom > $out/share/noise
    printf '%s\\n' "$out" >> $out/share/noise
  '';
  pkgs = rec {
    inherit pkgs;
    libgreet = sh "libgreet-1.0" ''
      \${record}
      mkdir -p $out/lib $out/share
      cp \${greeting} $out/share/greeting.txt
      echo "$out" | gzip -n > $out/share/where.gz
      printf '#include <stdio.h>\\nvoid greet(const char *data) { FILE *f = fopen(data, "r"); char b[256]; size_t n = fread(b, 1, sizeof b - 1, f); b[n] = 0; printf("%%s read from %%s\\\\n", b, data); }\\n' > greet.c
      gcc -shared -fPIC -o $out/lib/libgreet.so greet.c
    '';
    greet = sh "greet-1.0" ''
      \${record}
      mkdir -p $out/bin
      printf 'void greet(const char *);\\nint main(void) { greet(DATA); return 0; }\\n' > main.c
      gcc -o $out/bin/greet main.c -DDATA='"\${libgreet}/share/greeting.txt"' -L\${libgreet}/lib -lgreet -Wl,-rpath,\${libgreet}/lib
    '';
    hello-script = sh "hello-script-1.0" ''
      \${record}
      mkdir -p $out/bin
      printf '#!/bin/sh\\n# the library: %s\\nexec %s/bin/greet "$@"\\n' \${libgreet} \${greet} > $out/bin/hello
      chmod +x $out/bin/hello
    '';
    structured = derivation {
      __structuredAttrs = true;
      name = "structured-1.0";
      inherit system;
      builder = "/bin/bash";
      # Nix 2.8 reports a structured builder that printed nothing as killed by signal 9: it says what it did
      args = [ "-c" ''
        source "\${"$"}{NIX_ATTRS_SH_FILE:-.attrs.sh}"
        out=\${"$"}{outputs[out]}
        echo "built $name $out" >> "$impureLog"
        mkdir -p $out/bin
        printf '#!/bin/sh\\necho "structured: %s, %s"\\nexec %s "$@"\\n' "\${"$"}{settings[colour]}" "\${"$"}{settings[size]}" "$greetBin" > $out/bin/structured
        chmod +x $out/bin/structured
        echo "installed $out"
      '' ];
      PATH = "/usr/bin:/bin";
      impureLog = "${log}";
      greetBin = "\${greet}/bin/greet";
      settings = { colour = "green"; size = 3; };
    };
    stdenv = sh "stdenv-min" ''
      \${record}
      mkdir -p $out
      printf 'for p in $buildInputs; do PATH=$p/bin:$PATH; done\\nexport PATH\\n' > $out/setup
    '';
    runCommand = name: env: script: derivation ({ inherit name system stdenv; builder = "/bin/sh"; args = [ "-c" script ]; } // env);
    lacking = sh "lacking-1.0" ''
      \${record}
      mkdir -p $out/bin
      printf '#!/bin/sh\\nexec %s\\n' \${greet}/bin/greet > $out/bin/lacking
      chmod +x $out/bin/lacking
    '';
    runnable = small "runnable";
    # a chain only the test of translating ahead asks for: each names the one before
    chain-a = small "chain-a";
    chain-b = sh "chain-b" ''
      \${record}
      mkdir -p $out; echo \${chain-a} > $out/before
    '';
    chain-c = sh "chain-c" ''
      \${record}
      mkdir -p $out; echo \${chain-b} > $out/before
    '';
    victim-sig = small "victim-sig";
    victim-key = small "victim-key";
    victim-nar = small "victim-nar";
    offline = small "offline";
    # a NAR past what the translator decodes in-process (256 KiB compressed): the host's xz decodes it
    medium = noise "medium-1.0" 1500000;
    slow = noise "slow-1.0" 1000000;
    # a gzip member bigger than a rewrite holds in memory (16 MiB), so it is spooled to disk
    big-gz = sh "big-gz-1.0" ''
      \${record}
      mkdir -p $out/share
      { head -c 20000000 /dev/urandom; printf '%s\\n' "$out"; } | gzip -1 -n > $out/share/noise.gz
    '';
    big = noise "big-1.0" 48000000;
  };
in pkgs
`;
}

const FLAKE = `{
  outputs = { self }: let pkgs = import ./default.nix { system = "x86_64-linux"; }; in {
    packages.x86_64-linux = { default = pkgs.structured; runnable = pkgs.runnable; };
  };
}
`;

const UPSTREAM_ATTRS = ['hello-script', 'structured', 'stdenv', 'runnable', 'victim-sig', 'victim-key', 'victim-nar', 'offline', 'chain-c', 'medium', 'slow'];

// built once for both Nixes: the channel, the flake, and upstream's cache of their builds
let top: string;
let impureLog: string;
let upstream: { dir: string; key: string; secretFile: string; built: Map<string, string> };

before(async () => {
  for (const [t, p] of [
    ['setpriv', 'util-linux'],
    ['nix-build', 'nix-bin'],
    ['gcc', 'gcc'],
    ['gzip', 'gzip'],
    ['xz', 'xz-utils'],
    ['bash', 'bash'],
  ])
    requireTool(t!, p!);
  requireRoot('the upstream is the host Nix at /nix/store, and the user is uid 4242 (setpriv)');
  top = tempDir('binaries');
  await fs.chmod(top, 0o755);
  impureLog = path.join(top, 'impure.log');
  await fs.writeFile(impureLog, '');
  await fs.chmod(impureLog, 0o666);
  const chan = path.join(top, 'chan', 'nixpkgs');
  await fs.mkdir(chan, { recursive: true });
  await fs.writeFile(path.join(chan, 'default.nix'), channel(impureLog));
  await fs.writeFile(path.join(chan, 'greeting.txt'), 'hello from a source file');
  execFileSync('tar', ['-cJf', path.join(top, 'nixpkgs.tar.xz'), '-C', path.join(top, 'chan'), 'nixpkgs']);
  await fs.mkdir(path.join(top, 'flake'));
  await fs.copyFile(path.join(chan, 'default.nix'), path.join(top, 'flake', 'default.nix'));
  await fs.copyFile(path.join(chan, 'greeting.txt'), path.join(top, 'flake', 'greeting.txt'));
  await fs.writeFile(path.join(top, 'flake', 'flake.nix'), FLAKE);

  const dir = path.join(top, 'up');
  const b = await buildUpstream(top, path.join(chan, 'default.nix'), UPSTREAM_ATTRS, dir);
  const big = await buildUpstream(top, path.join(chan, 'default.nix'), ['big', 'big-gz'], dir, 'none');
  upstream = { dir, key: b.key, secretFile: b.secretFile, built: new Map([...b.out, ...big.out]) };
  const upBuilds = (await fs.readFile(impureLog, 'utf8')).split('\n').filter((l) => l.includes(' /nix/store/'));
  assert.equal(upBuilds.length, 17, 'upstream built the packages');
  execFileSync('chmod', ['-R', 'a+rX', top]);
});

after(async () => {
  if (upstream) {
    try {
      hostNix(path.join(top, 'root-home'), 'nix-store', ['--delete', ...upstream.built.values()]);
    } catch {
      // still referenced from elsewhere: the store keeps it
    }
  }
  if (top) await removePrefix(top);
});

forEachNix(
  ({ fixture, test }) => {
    /** this Nix's own: a copy of upstream's cache (its tests tamper with it, and take it down), its server, its prefixes */
    let work: string;
    let up: UpstreamCache;
    let mirror: Mirror;
    let prefix: string;
    let longPrefix: string;
    let longBootstrap: string;
    let cacheInfoAtBootstrap: number;

    /** What was built in this prefix's store, as `built NAME` lines: the other Nix's builds and upstream's are not. */
    const logLines = async () =>
      (await fs.readFile(impureLog, 'utf8'))
        .split('\n')
        .filter((l) => l.includes(` ${prefix}/s/`))
        .map((l) => l.split(' ').slice(0, 2).join(' '));

    /** A shell as the uid, in the environment `relonix env` prints, with the host's Nix hidden. */
    function inPrefix(script: string) {
      return shAs(NOBODY_UID, `set -e; eval "$(${process.execPath} ${RELONIX} env --prefix ${prefix})"; ${script}`);
    }

    /** Runs `script` in the prefix and checks that nothing was built: the impure log did not grow. */
    async function withoutBuilds(script: string): Promise<{ stdout: string; stderr: string }> {
      const before = await logLines();
      const r = await inPrefix(script);
      assert.equal(r.code, 0, `${script}\n${r.stdout}\n${r.stderr}`);
      assert.deepEqual((await logLines()).slice(before.length), [], `nothing was built locally:\n${r.stderr}`);
      // the one thing Nix builds itself is a profile's user environment (a builtin: no builder runs)
      assert.deepEqual(
        r.stderr.split('\n').filter((l) => l.startsWith("building '") && !l.includes('-user-environment.drv')),
        [],
      );
      return r;
    }

    /** Bootstraps the prefix from the own cache the restart test fills (signed by own-1), with `upstreamUrl` as its upstream. */
    async function bootstrapFromOwnCache(upstreamUrl: string) {
      const publicKey = (await fs.readFile(path.join(work, 'keys', 'own-1.public'), 'utf8')).trim();
      const cache = `file://${path.join(work, 'own-cache')}`;
      return relonix(NOBODY_UID, [
        'bootstrap',
        '--prefix',
        prefix,
        '--cache',
        cache,
        '--trusted-key',
        publicKey,
        '--upstream',
        upstreamUrl,
        '--upstream-key',
        up.key,
      ]);
    }

    async function status(): Promise<{ storeDir: string; translator: TranslatorStatus }> {
      const r = await relonix(NOBODY_UID, ['status', '--prefix', prefix, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    }

    before(async () => {
      work = path.join(top, `nix-${fixture}`);
      await fs.mkdir(work);
      execFileSync('cp', ['-a', upstream.dir, path.join(work, 'up')]);
      up = await serveUpstream(path.join(work, 'up'), upstream.key, upstream.secretFile);
      mirror = await serveFixture(fixture);
      prefix = await shortPrefix(NOBODY_UID);
      longPrefix = await prefixFor(NOBODY_UID, `binaries-long-${fixture}`);
      // the two bootstraps at once: a prefix whose store dir is as long as /nix/store, and one whose is not
      const upstreamArgs = ['--url', mirror.url, '--upstream', up.url, '--upstream-key', up.key];
      const [r, long] = await Promise.all([
        relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, ...upstreamArgs]),
        relonix(NOBODY_UID, ['bootstrap', '--prefix', longPrefix, ...upstreamArgs]),
      ]);
      assert.equal(r.code, 0, `bootstrap:\n${r.stdout}\n${r.stderr}`);
      assert.equal(long.code, 0, `bootstrap of the long prefix:\n${long.stdout}\n${long.stderr}`);
      longBootstrap = long.stdout + long.stderr;
      cacheInfoAtBootstrap = up.server.log.filter((x) => x.path === '/nix-cache-info').length;
      const c = await inPrefix(`nix-channel --add file://${top}/nixpkgs.tar.xz nixpkgs; nix-channel --update`);
      assert.equal(c.code, 0, c.stderr);
    });

    after(async () => {
      if (prefix) await relonix(NOBODY_UID, ['translator', 'stop', '--prefix', prefix]).catch(() => undefined);
      await mirror?.close();
      await up?.close();
      if (prefix) await removePrefix(prefix);
      if (longPrefix) await removePrefix(path.dirname(longPrefix));
    });

    test('the default store dir of a prefix of 8 bytes is <prefix>/s, and status names the upstream and the translator', async () => {
      const st = await status();
      assert.equal(st.storeDir, `${prefix}/s`);
      assert.equal(st.translator.enabled, true);
      assert.deepEqual(st.translator.upstreams, [up.url]);
      const conf = await fs.readFile(path.join(prefix, 'etc', 'nix', 'nix.conf'), 'utf8');
      assert.match(conf, new RegExp(`^substituters = ${st.translator.url}$`, 'm'));
      const v = await inPrefix('nix-env --version');
      assert.equal(v.stdout.trim(), `nix-env (Nix) ${mirror.fx.version}`, 'the Nix this suite is about runs in the prefix');
    });

    test("the check build of a bootstrap's verify asks no substituter: Nix run without the wrappers, the translator stopped, builds it at once", async () => {
      // verify and doctor run the prefix's Nix directly, not through the bin/ wrappers that start the
      // translator: a check build that asked it would wait on Nix's retries of a dead port
      const stop = await relonix(NOBODY_UID, ['translator', 'stop', '--prefix', prefix]);
      assert.equal(stop.code, 0, stop.stderr);
      const check = path.join(prefix, 'var', 'relonix', 'check.nix');
      const build = `"$NIX_BIN_DIR/nix-build" --no-out-link ${check}`;
      const r = await inPrefix(`out=$(${build}); "$NIX_BIN_DIR/nix-store" --delete "$out" >/dev/null; again=$(${build}); [ "$again" = "$out" ]; cat "$out"`);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.equal(r.stdout.trim(), 'ok');
      assert.match(r.stderr, /building '.*-relonix-check\.drv'/, 'the deleted output was built again');
      assert.doesNotMatch(r.stderr, /unable to download|127\.0\.0\.1/, 'Nix did not ask the stopped translator');
    });

    test('a prefix whose store dir is not as long as /nix/store asks nothing of upstream, and says why, once at bootstrap and in status', async () => {
      assert.equal(cacheInfoAtBootstrap, 1, 'only the short prefix checked the upstream at bootstrap');
      const why = /the store dir \S+ is \d+ bytes, not 10 as \/nix\/store/;
      assert.equal(longBootstrap.split('\n').filter((l) => why.test(l)).length, 1, longBootstrap);
      const st = JSON.parse((await relonix(NOBODY_UID, ['status', '--prefix', longPrefix, '--json'])).stdout);
      assert.equal(st.translator.enabled, false);
      assert.match(st.translator.off, why);
      const text = (await relonix(NOBODY_UID, ['status', '--prefix', longPrefix])).stdout;
      assert.match(text, /^upstream\s+none: the store dir/m);
      const asked = up.server.requests;
      const r = await shAs(NOBODY_UID, `${longPrefix}/bin/nix-build --no-out-link ${top}/chan/nixpkgs/default.nix -A stdenv`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(up.server.requests, asked, 'its Nix asked upstream nothing');
      assert.doesNotMatch(await fs.readFile(path.join(longPrefix, 'etc', 'nix', 'nix.conf'), 'utf8'), /127\.0\.0\.1/);
    });

    test('nix-env -iA: a library, a program linking it and a script naming both, with zero local builds; they run and name no /nix/store', async () => {
      const r = await withoutBuilds('nix-env -iA nixpkgs.hello-script; hello');
      assert.match(r.stdout, new RegExp(`^hello from a source file read from ${prefix}/s/[0-9a-z]{32}-libgreet-1.0/share/greeting.txt$`, 'm'));
      const closure = (await inPrefix(`nix-store -qR ${prefix}/var/nix/profiles/default`)).stdout
        .split('\n')
        .filter((p) => /-(libgreet|greet|hello-script)-1\.0$/.test(p));
      assert.equal(closure.length, 3, closure.join(' '));
      assert.deepEqual((await Promise.all(closure.map(namingNixStore))).flat(), []);
      // the one exception, a store path inside gzip data, cannot be rewritten in place: status lists it
      const st = await status();
      const lib = closure.find((p) => p.endsWith('-libgreet-1.0'))!;
      assert.deepEqual(st.translator.compressed, { [lib]: ['share/where.gz'] });
      assert.match(execFileSync('gzip', ['-dc', path.join(lib, 'share', 'where.gz')], { encoding: 'utf8' }), STORE_REF);
      assert.ok(st.translator.translated.paths >= 3);
    });

    test('asked for one path, the translator translates its references before Nix asks for them', async () => {
      const drvs = (await inPrefix("nix-instantiate '<nixpkgs>' -A chain-a -A chain-b -A chain-c")).stdout.trim().split('\n');
      const [a, b, c] = (await inPrefix(`nix-store -q --outputs ${drvs.join(' ')}`)).stdout.trim().split('\n');
      const cache = path.join(prefix, 'var', 'relonix', 'translator', 'cache');
      const kept = (p: string) => path.join(cache, `${path.basename(p).slice(0, 32)}.narinfo`);
      await assert.rejects(fs.access(kept(a!)), 'nothing of the chain was translated yet');
      // as Nix asks: at the substituter URL nix.conf names
      const res = await fetch(`${(await status()).translator.url}/${path.basename(c!).slice(0, 32)}.narinfo`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, new RegExp(`^References: .*${path.basename(b!)}`, 'm'));
      // the NAR is named by its file in the cache, which Nix reads itself; the kept narinfo stays relative
      const url = /^URL: (.*)$/m.exec(text)![1]!;
      assert.match(url, /^file:\/\/\/.*\/nar\/[0-9a-z]{52}\.nar$/);
      await fs.access(fileURLToPath(url));
      assert.match(await fs.readFile(kept(c!), 'utf8'), /^URL: nar\/[0-9a-z]{52}\.nar$/m);
      // chain-b was named by chain-c's narinfo, chain-a by chain-b's: both are kept with nobody asking
      for (const p of [b!, a!])
        await waitUntil(
          `${p} was translated ahead`,
          () =>
            fs.access(kept(p)).then(
              () => true,
              () => false,
            ),
          { every: 100 },
        );
      await withoutBuilds(`nix-store -r ${c}`);
    });

    test('nix-shell -p: its inputs substituted, zero local builds, the program on PATH', async () => {
      const r = await withoutBuilds('NIX_BUILD_SHELL=bash nix-shell -p greet --run greet');
      assert.match(r.stdout, /^hello from a source file read from /m);
    });

    test('nix build of a path: flake: a __structuredAttrs package, zero local builds', async () => {
      const r = await withoutBuilds(`nix ${FLAKES} build path:${top}/flake --no-link --json`);
      const out = (JSON.parse(r.stdout) as { outputs: { out: string } }[])[0]!.outputs.out;
      assert.match(out, new RegExp(`^${prefix}/s/[0-9a-z]{32}-structured-1.0$`));
      const run = await inPrefix(`${out}/bin/structured`);
      assert.match(run.stdout, /^structured: green, 3$/m);
      assert.match(run.stdout, /^hello from a source file read from /m);
      assert.deepEqual(await namingNixStore(out), []);
    });

    test('nix profile install and nix run of a path: flake: zero local builds, and the program runs', async () => {
      const profile = path.join(prefix, 'home', 'flake-profile');
      const r = await withoutBuilds(`nix ${FLAKES} profile install --profile ${profile} path:${top}/flake#runnable && ${profile}/bin/runnable`);
      assert.match(r.stdout, /^runnable is genuine$/m);
      // without the profile its closure is garbage: nix run substitutes it again
      const mine = await ours('runnable');
      const run = await withoutBuilds(
        `rm -f ${profile} ${profile}-*-link && nix-collect-garbage >/dev/null && test ! -e ${mine} && nix ${FLAKES} run path:${top}/flake#runnable`,
      );
      assert.match(run.stdout, /^runnable is genuine$/m);
    });

    test('nix-build of the channel: zero local builds', async () => {
      const r = await withoutBuilds("nix-build --no-out-link '<nixpkgs>' -A structured -A hello-script");
      assert.equal(r.stdout.trim().split('\n').length, 2);
    });

    test('a package upstream lacks is built here, its dependencies substituted', async () => {
      const before = await logLines();
      const r = await inPrefix(
        "nix-build --no-out-link '<nixpkgs>' -A lacking && nix-collect-garbage >/dev/null && nix-build --no-out-link '<nixpkgs>' -A lacking",
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((await logLines()).slice(before.length), ['built lacking-1.0', 'built lacking-1.0'], 'only the package itself was built');
    });

    test('a reinstall after garbage collection is served from the file cache: upstream is not asked again', async () => {
      const asked = up.server.requests;
      await withoutBuilds('nix-env -e hello-script; nix-collect-garbage -d >/dev/null; nix-env -iA nixpkgs.hello-script; hello');
      assert.equal(up.server.requests, asked, 'no request reached upstream');
    });

    test('the translator decodes every upstream xz NAR itself, one past 256 KiB too: an xz on PATH is never run, even one that fails', async () => {
      const before = await xzClosureNarHashes();
      // medium's NAR is the one a host's xz would decode anywhere else
      const fileSize = Number(/^FileSize: (\d+)$/m.exec(await fs.readFile(upstreamNarinfo('medium'), 'utf8'))?.[1]);
      assert.ok(fileSize > IN_PROCESS_BYTES, `medium's NAR has ${fileSize} bytes of xz, past ${IN_PROCESS_BYTES}`);
      const log = path.join(prefix, 'var', 'relonix', 'translator', 'server.log');
      const logged = (await fs.readFile(log, 'utf8').catch(() => '')).length;
      const ran = await withFailingXz(before);
      assert.equal(ran, '', 'the xz on PATH never ran');
      const said = (await fs.readFile(log, 'utf8').catch(() => '')).slice(logged);
      // what it would have said of an xz that fails (a store path's hash may hold the letters xz)
      assert.doesNotMatch(said, /host's xz/, 'the translator had nothing to say of the xz on PATH');
    });

    /**
     * The NarHash of each kept translation of the closures of hello-script (small NARs) and medium
     * (one past IN_PROCESS_BYTES), after installing them.
     */
    async function xzClosureNarHashes(): Promise<(string | undefined)[]> {
      await withoutBuilds("nix-build --no-out-link '<nixpkgs>' -A hello-script -A medium >/dev/null");
      const closure = (await inPrefix(`nix-store -qR ${await ours('hello-script')} ${await ours('medium')}`)).stdout.trim().split('\n');
      const cache = path.join(prefix, 'var', 'relonix', 'translator', 'cache');
      const hashes = await Promise.all(
        closure.map(
          async (p) => /^NarHash: .*$/m.exec(await fs.readFile(path.join(cache, `${path.basename(p).slice(0, 32)}.narinfo`), 'utf8').catch(() => ''))?.[0],
        ),
      );
      assert.ok(
        hashes.every((h) => h !== undefined),
        'every path of the closure was translated',
      );
      return hashes;
    }

    /**
     * Installs hello-script and medium from nothing (no kept translations, a translator started anew) with
     * an xz first on PATH that notes its run and fails, checking that nothing was built and that the
     * translations are `expected`; returns the notes of its runs.
     */
    async function withFailingXz(expected: (string | undefined)[]): Promise<string> {
      const cache = path.join(prefix, 'var', 'relonix', 'translator', 'cache');
      const bin = tempDir('failing-xz');
      const runs = path.join(bin, 'runs');
      await fs.chmod(bin, 0o777);
      await fs.writeFile(path.join(bin, 'xz'), `#!/bin/sh\necho ran >> ${runs}\necho xz is broken here >&2\nexit 1\n`, { mode: 0o755 });
      try {
        await relonix(NOBODY_UID, ['translator', 'stop', '--prefix', prefix]);
        await fs.rm(cache, { recursive: true, force: true });
        // set before the first command, which starts the translator with its environment
        await withoutBuilds(
          `export PATH=${bin}:$PATH; nix-env -e hello-script medium >/dev/null 2>&1 || true; nix-collect-garbage -d >/dev/null; rm -rf "\${XDG_CACHE_HOME:-$HOME/.cache}/nix"; nix-env -iA nixpkgs.hello-script nixpkgs.medium; hello`,
        );
        assert.deepEqual(await xzClosureNarHashes(), expected);
        return await fs.readFile(runs, 'utf8').catch(() => '');
      } finally {
        // the translator keeps the environment it started with: the next tests get one with the host's xz
        await relonix(NOBODY_UID, ['translator', 'stop', '--prefix', prefix]);
        await fs.rm(bin, { recursive: true, force: true });
      }
    }

    /** Our output path of `attr`, as the prefix's Nix evaluates it. */
    async function ours(attr: string): Promise<string> {
      const r = await inPrefix(`nix-instantiate --eval -E '(import <nixpkgs> {}).${attr}.outPath'`);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout.trim());
    }

    /** The narinfo file of upstream's build of `attr`. */
    function upstreamNarinfo(attr: string): string {
      return path.join(up.dir, `${path.basename(upstream.built.get(attr)!).slice(0, 32)}.narinfo`);
    }

    /** The NarSize of upstream's build of `attr`. */
    function upstreamNarSize(attr: string): number {
      return Number(/^NarSize: (\d+)$/m.exec(readFileSync(upstreamNarinfo(attr), 'utf8'))![1]);
    }

    /** Builds `attr` after its upstream copy was tampered with: refused, said, built here instead. */
    async function refusedThenBuilt(attr: string, reason: RegExp): Promise<void> {
      const mine = await ours(attr);
      const before = await logLines();
      const r = await inPrefix(`nix-build --no-out-link '<nixpkgs>' -A ${attr} && ${mine}/bin/${attr}`);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stderr.includes(`relonix: refused ${mine} from upstream:`), r.stderr);
      assert.match(r.stderr, reason);
      assert.match(r.stderr, /Nix builds it instead/);
      assert.deepEqual((await logLines()).slice(before.length), [`built ${attr}`], 'Nix built it itself');
      assert.match(r.stdout, new RegExp(`^${attr} is genuine$`, 'm'), 'what is in the store is the genuine build');
      const refused = (await status()).translator.refused as { path: string; why: string }[];
      const entry = refused.find((x) => x.path === mine);
      assert.ok(entry, 'status lists the refusal');
      assert.match(entry.why, reason);
      await assert.rejects(fs.access(path.join(prefix, 'var', 'relonix', 'translator', 'cache', `${path.basename(mine).slice(0, 32)}.narinfo`)));
    }

    test('a tampered upstream narinfo is refused, said, and the path built here', async () => {
      const f = upstreamNarinfo('victim-sig');
      const text = await fs.readFile(f, 'utf8');
      await fs.writeFile(
        f,
        text.replace(/^NarSize: (\d+)$/m, (_, n) => `NarSize: ${Number(n) + 8}`),
      );
      await refusedThenBuilt('victim-sig', /no valid signature by a trusted key/);
    });

    test('an upstream narinfo signed with another key is refused', async () => {
      const home = path.join(top, 'root-home');
      hostNix(home, 'nix-store', ['--generate-binary-cache-key', 'stranger-1', path.join(work, 'stranger.secret'), path.join(work, 'stranger.public')]);
      hostNix(home, 'nix', [
        'store',
        'sign',
        '--store',
        `file://${up.dir}`,
        '--key-file',
        path.join(work, 'stranger.secret'),
        upstream.built.get('victim-key')!,
      ]);
      const f = upstreamNarinfo('victim-key');
      await fs.writeFile(f, (await fs.readFile(f, 'utf8')).replace(/^Sig: upstream-test-1:.*\n/m, ''));
      await refusedThenBuilt('victim-key', /signatures by: stranger-1/);
    });

    test('an upstream NAR whose hash is not the signed one is refused, and its bytes never reach the store', async () => {
      const f = upstreamNarinfo('victim-nar');
      const ni = await fs.readFile(f, 'utf8');
      const nar = path.join(up.dir, /^URL: (.*)$/m.exec(ni)![1]!);
      const plain = execFileSync('xz', ['-dc', nar]);
      const at = plain.indexOf('is genuine');
      assert.ok(at > 0);
      plain.write('is FORGED!', at, 'latin1');
      const forged = execFileSync('xz', ['-c'], { input: plain });
      await fs.writeFile(nar, forged);
      const fileHash = execFileSync('nix-hash', ['--type', 'sha256', '--flat', '--base32', nar], { encoding: 'utf8' }).trim();
      // FileHash and FileSize are not signed: an attacker can match them to the forged file
      await fs.writeFile(f, ni.replace(/^FileHash: .*$/m, `FileHash: sha256:${fileHash}`).replace(/^FileSize: .*$/m, `FileSize: ${forged.length}`));
      await refusedThenBuilt('victim-nar', /has hash .* but its signed narinfo says/);
    });

    test('an upstream that is down: a clear warning, and Nix builds', async () => {
      up.down = true;
      try {
        const before = await logLines();
        const r = await inPrefix(`nix-build --no-out-link '<nixpkgs>' -A offline`);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stderr.includes(`relonix: warning: the upstream ${up.url} cannot be reached`), r.stderr);
        assert.match(r.stderr, /Nix builds what it would have substituted/);
        assert.deepEqual((await logLines()).slice(before.length), ['built offline']);
        assert.ok((await status()).translator.unreachable[up.url]);
      } finally {
        up.down = false;
      }
    });

    test('content-addressed and impure derivations are not translated, and status counts them with their reason', async () => {
      const expr = path.join(work, 'floating.nix');
      const drv = (extra: string) => `derivation { system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo $name > $out" ]; ${extra} }`;
      await fs.writeFile(
        expr,
        `{ ca = ${drv('name = "floating-ca"; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";')}; impure = ${drv('name = "floating-impure"; __impure = true;')}; trigger = ${drv(`name = "trigger-${Date.now()}";`)}; }\n`,
      );
      await fs.chmod(expr, 0o644);
      // the translator reads the store's derivations when a command asks it for a path it does not know
      const r = await inPrefix(
        `nix-instantiate --extra-experimental-features 'ca-derivations impure-derivations' ${expr} >/dev/null && nix-build --no-out-link ${expr} -A trigger`,
      );
      assert.equal(r.code, 0, r.stderr);
      const st = await status();
      assert.equal(st.translator.untranslatable['a content-addressed derivation (__contentAddressed)'], 1);
      assert.equal(st.translator.untranslatable['an impure derivation (__impure)'], 1);
      const text = (await relonix(NOBODY_UID, ['status', '--prefix', prefix])).stdout;
      assert.match(text, /not translated \(Nix builds them\): .*1 a content-addressed derivation/);
    });

    test('the translator killed with SIGKILL mid-NAR: nothing half-written anywhere, and the next command succeeds', async () => {
      const ni = await fs.readFile(upstreamNarinfo('big'), 'utf8');
      const server = path.join(prefix, 'var', 'relonix', 'translator', 'server');
      let killed: number | undefined;
      up.slow = {
        path: `/${/^URL: (.*)$/m.exec(ni)![1]}`,
        piece: 1 << 20,
        everyMs: 100,
        atHalf: () => {
          killed = Number(execFileSync('cat', [server], { encoding: 'utf8' }).split(' ')[0]);
          process.kill(killed, 'SIGKILL');
        },
      };
      const mine = await ours('big');
      try {
        await inPrefix(`nix-build --no-out-link '<nixpkgs>' -A big`);
      } finally {
        up.slow = undefined;
      }
      assert.ok(killed, 'the translator was struck half-way through the NAR');
      await assert.rejects(fs.access(mine), 'no path of it is in the store');
      const verify = await inPrefix('nix-store --verify --check-contents');
      assert.equal(verify.code, 0, verify.stderr);
      const cache = path.join(prefix, 'var', 'relonix', 'translator', 'cache');
      await assert.rejects(fs.access(path.join(cache, `${path.basename(mine).slice(0, 32)}.narinfo`)), 'no narinfo was served for it');
      const r = await withoutBuilds(`nix-build --no-out-link '<nixpkgs>' -A big && tail -c ${mine.length + 1} ${mine}/share/noise`);
      assert.ok(r.stdout.endsWith(`\n${mine}\n`), 'the next command substituted it whole, its own path rewritten');
    });

    test('a translation that takes a while is said while the command waits, and how it ended', async () => {
      const ni = await fs.readFile(upstreamNarinfo('slow'), 'utf8');
      // 4.5 s at least for its NAR (the first line is due after 3): Nix prints nothing while it waits for the narinfo
      up.slow = { path: `/${/^URL: (.*)$/m.exec(ni)![1]}`, piece: 64 << 10, everyMs: 300, atHalf: () => undefined };
      let r: { stdout: string; stderr: string };
      try {
        const command = withoutBuilds(`nix-build --no-out-link '<nixpkgs>' -A slow`);
        // meanwhile relonix status says how far it is
        let now: TranslatorStatus['now'];
        await waitUntil(
          'relonix status shows the translation under way',
          async () => {
            now = (await status()).translator.now;
            return now !== undefined;
          },
          { every: 100 },
        );
        assert.deepEqual({ ...now!, since: undefined }, { since: undefined, asked: 1, ended: 0, failed: 0, bytes: upstreamNarSize('slow'), endedBytes: 0 });
        r = await command;
      } finally {
        up.slow = undefined;
      }
      assert.equal((await status()).translator.now, undefined, 'and nothing once it is over');
      assert.equal(r.stdout.trim().split('\n').pop(), await ours('slow'));
      assert.match(r.stderr, /^relonix: translating upstream's binaries for Nix: 0 of 1 path done \(0\.0 MiB of 1\.0 MiB\), \d+ s so far$/m);
      assert.match(r.stderr, /^relonix: translated 1 path \(1\.0 MiB\) in \d+ s$/m);
    });

    test('a gzip member too big to hold in memory is spooled inside the prefix, not in the OS temp dir', async () => {
      const mine = await ours('big-gz');
      // the spool's file lives in a directory made and removed at once: watched for, not looked for
      const dir = path.join(prefix, 'var', 'relonix', 'translator');
      const seen: string[] = [];
      const watcher = watch(dir, (_event, name) => name && seen.push(name));
      let r: { stdout: string };
      try {
        r = await withoutBuilds(`nix-build --no-out-link '<nixpkgs>' -A big-gz`);
      } finally {
        watcher.close();
      }
      assert.equal(r.stdout.trim().split('\n').pop(), mine);
      assert.ok(
        seen.some((n) => n.startsWith('relonix-spool-')),
        `the spool was made in ${dir}: ${[...new Set(seen)].join(', ')}`,
      );
      assert.ok(
        (await fs.readdir(dir)).every((n) => !n.startsWith('relonix-spool-')),
        'and nothing of it is left',
      );
      assert.deepEqual((await status()).translator.compressed[mine], ['share/noise.gz']);
    });

    test('a restart that wipes the prefix: relonix build --cache restores and substitutes from the own cache, upstream not asked again', async () => {
      const keys = path.join(work, 'keys');
      const cache = path.join(work, 'own-cache');
      for (const d of [keys, cache]) {
        await fs.mkdir(d);
        await fs.chown(d, NOBODY_UID, NOBODY_UID);
      }
      assert.equal((await relonix(NOBODY_UID, ['keygen', '--name', 'own-1', '--out', keys])).code, 0);
      const secret = path.join(keys, 'own-1.secret');
      const args = buildArgv({ prefix, cache: `file://${cache}`, secret }, [], ['--no-out-link', `${top}/chan/nixpkgs/default.nix`, '-A', 'structured']);
      const before = await logLines();
      const first = await relonix(NOBODY_UID, args);
      assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
      const out = first.stdout.trim().split('\n').pop()!;
      assert.match(out, new RegExp(`^${prefix}/s/[0-9a-z]{32}-structured-1.0$`));

      // relonix publish takes translated paths like any other
      const published = path.join(work, 'published');
      await fs.mkdir(published);
      await fs.chown(published, NOBODY_UID, NOBODY_UID);
      const pub = await relonix(NOBODY_UID, ['publish', '--prefix', prefix, '--to', `file://${published}`, '--secret-key', secret, out]);
      assert.equal(pub.code, 0, pub.stderr);
      await fs.access(path.join(published, `${path.basename(out).slice(0, 32)}.narinfo`));

      await relonix(NOBODY_UID, ['translator', 'stop', '--prefix', prefix]);
      await removePrefix(prefix);
      await fs.mkdir(prefix);
      await fs.chown(prefix, NOBODY_UID, NOBODY_UID);
      const asked = up.server.requests;
      const restore = await bootstrapFromOwnCache(up.url);
      assert.equal(restore.code, 0, `${restore.stdout}\n${restore.stderr}`);
      const second = await relonix(NOBODY_UID, args);
      assert.equal(second.code, 0, `${second.stdout}\n${second.stderr}`);
      assert.equal(second.stdout.trim().split('\n').pop(), out);
      assert.deepEqual((await logLines()).slice(before.length), [], 'nothing was built, before or after the wipe');
      assert.deepEqual(
        up.server.log.slice(asked).map((x) => x.path),
        ['/nix-cache-info'],
        'upstream was only checked at bootstrap: every path came from the own cache',
      );
      const run = await shAs(NOBODY_UID, `${out}/bin/structured`);
      assert.match(run.stdout, /^structured: green, 3$/m);
    });

    test('an upstream whose nix-cache-info names a store dir of another length is refused at bootstrap', async () => {
      const other = await startServer({ files: { '/nix-cache-info': 'StoreDir: /nix/store-longer\nWantMassQuery: 1\nPriority: 40\n' } });
      try {
        const r = await bootstrapFromOwnCache(other.url);
        assert.equal(r.code, EXIT.usage, `${r.stdout}\n${r.stderr}`);
        assert.match(r.stderr, new RegExp(`the upstream ${other.url} cannot serve this prefix: .*serves the store /nix/store-longer \\(17 bytes\\)`));
        assert.match(r.stderr, /fix: /);
      } finally {
        await other.close();
      }
    });

    test('relonix uninstall stops the running translator before it removes what it serves', async () => {
      const st = await inPrefix('nix-store --version');
      assert.equal(st.code, 0, st.stderr);
      const server = path.join(prefix, 'var', 'relonix', 'translator', 'server');
      const [pid, , port] = (await fs.readFile(server, 'utf8')).trim().split(' ').map(Number);
      assert.ok(processAlive(pid!), 'the wrapper started the translator');
      const r = await relonix(NOBODY_UID, ['uninstall', '--prefix', prefix]);
      assert.equal(r.code, EXIT.ok, r.stderr);
      assert.match(r.stdout, new RegExp(`^stopped the translator of ${prefix}$`, 'm'));
      assert.ok(!processAlive(pid!), 'its process is gone');
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`), 'nothing listens on its port');
      await assert.rejects(fs.access(prefix));
    });
  },
  { concurrently: true },
);
