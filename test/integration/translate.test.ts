// relonix translate against a real upstream: Debian's Nix, as root at /nix/store, builds a small
// closure (a shared library, a program linked to it by RUNPATH with a store path compiled into its
// data, a script whose #! names the program, a source file from disk, a gzip file naming a store
// path) and `nix copy`s it to a signed file:// cache. The unprivileged uid bootstraps a prefix whose
// store dir is as long as /nix/store, translates the same expression, and nix-build then builds
// nothing. Upstreams that must be refused publish nothing.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { parseNarInfo } from '../../src/cache/narinfo.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { type RunningServer, serveDirectory } from '../../src/net/serve.ts';
import { buildArgv } from '../helpers/build-rig.ts';
import { EXIT, NOBODY_UID, relonix, shAs, spawnRelonix } from '../helpers/cli.ts';
import { startServer } from '../helpers/http.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { prefixFor, RELONIX, removePrefix } from '../helpers/paths.ts';
import { gcc, requireRoot, requireTool } from '../helpers/tools.ts';
import { hostNix, namingNixStore } from '../helpers/upstream.ts';

let top: string;
let upstream: { dir: string; key: string; out: string; closure: string[]; drvs: string[] };
let mine: { secret: string; public: string };

/** The expression both stores evaluate: its builders record every build in an impure log. */
function expression(log: string): string {
  return `let
  sh = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-e" "-c" script ];
    PATH = "/usr/bin:/bin";
    impureLog = "${log}";
  };
  greeting = ./greeting.txt;
  lib = sh "libgreet-1.0" ''
    echo "built $name" >> "$impureLog"
    mkdir -p $out/lib $out/share
    cp \${greeting} $out/share/greeting.txt
    echo "$out" | gzip -n > $out/share/where.gz
    printf '#include <stdio.h>\\nvoid greet(const char *data) { FILE *f = fopen(data, "r"); char b[256]; size_t n = fread(b, 1, sizeof b - 1, f); b[n] = 0; printf("%%s read from %%s\\\\n", b, data); }\\n' > greet.c
    gcc -shared -fPIC -o $out/lib/libgreet.so greet.c
  '';
  prog = sh "greet-1.0" ''
    echo "built $name" >> "$impureLog"
    mkdir -p $out/bin
    printf 'void greet(const char *);\\nint main(void) { greet(DATA); return 0; }\\n' > main.c
    gcc -o $out/bin/greet main.c -DDATA='"\${lib}/share/greeting.txt"' -L\${lib}/lib -lgreet -Wl,-rpath,\${lib}/lib
  '';
in sh "hello-script-1.0" ''
  echo "built $name" >> "$impureLog"
  mkdir -p $out/bin $out/share
  printf '#!\${prog}/bin/greet\\n' > $out/bin/hello
  chmod +x $out/bin/hello
  ln -s \${greeting} $out/share/source.txt
''
`;
}

/** Nix options that make the file cache `to` the only substituter, trusted by the prefix's key. */
const onlyFrom = (to: string) => ['--option', 'substituters', `file://${to}`, '--option', 'trusted-public-keys', mine.public];

/** Debian's Nix as root at /nix/store (test/helpers/upstream.ts), with its home in this file's directory. */
const rootNix = (cmd: string, args: string[]) => hostNix(path.join(top, 'root-home'), cmd, args);

/** A store dir as long as /nix/store that nobody uses: /tmp/ and five characters. */
function freshStoreDir(): string {
  for (;;) {
    const d = `/tmp/t${randomBytes(8)
      .toString('hex')
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 4)}`;
    if (d.length === 10 && !existsSync(d)) return d;
  }
}

const lines = async (f: string) => (await fs.readFile(f, 'utf8')).split('\n').filter(Boolean);

// the upstream (the host's Nix at /nix/store) and the prefix's signing key serve every Nix's suite
before(async () => {
  for (const [t, p] of [
    ['setpriv', 'util-linux'],
    ['nix-build', 'nix-bin'],
    ['gcc', 'gcc'],
    ['gzip', 'gzip'],
    ['xz', 'xz-utils'],
  ])
    requireTool(t!, p!);
  requireRoot('the upstream is the host Nix at /nix/store, and the user is uid 4242 (setpriv)');
  top = path.dirname(await prefixFor(NOBODY_UID, 'translate-upstream'));
  await fs.chmod(top, 0o755);

  const expr = path.join(top, 'expr');
  await fs.mkdir(expr);
  await fs.writeFile(path.join(expr, 'greeting.txt'), 'hello from a source file');
  await fs.writeFile(path.join(expr, 'default.nix'), expression(path.join(top, 'impure.log')));
  await fs.writeFile(path.join(top, 'impure.log'), '', { mode: 0o666 });
  await fs.chmod(path.join(top, 'impure.log'), 0o666);
  const out = rootNix('nix-build', ['--no-out-link', path.join(expr, 'default.nix')]);
  assert.equal((await lines(path.join(top, 'impure.log'))).length, 3, 'upstream built the three derivations');
  rootNix('nix-store', ['--generate-binary-cache-key', 'upstream-1', path.join(top, 'up.secret'), path.join(top, 'up.public')]);
  const dir = path.join(top, 'up');
  rootNix('nix', ['copy', '--to', `file://${dir}?secret-key=${path.join(top, 'up.secret')}`, out]);
  const drvs = rootNix('nix-store', ['-qR', rootNix('nix-instantiate', [path.join(expr, 'default.nix')])]).split('\n');
  upstream = {
    dir,
    key: await fs.readFile(path.join(top, 'up.public'), 'utf8'),
    out,
    closure: rootNix('nix-store', ['-qR', out]).split('\n'),
    drvs,
  };
  execFileSync('chmod', ['-R', 'a+rX', top]);

  const keys = path.join(top, 'keys');
  await fs.mkdir(keys);
  await fs.chown(keys, NOBODY_UID, NOBODY_UID);
  const k = await relonix(NOBODY_UID, ['keygen', '--name', 'prefix-1', '--out', keys]);
  assert.equal(k.code, 0, k.stderr);
  mine = { secret: path.join(keys, 'prefix-1.secret'), public: (await fs.readFile(path.join(keys, 'prefix-1.public'), 'utf8')).trim() };
});

after(async () => {
  if (upstream) {
    // the upstream build and its derivations live in the machine's own store: take them out again
    try {
      rootNix('nix-store', ['--delete', ...upstream.closure, ...upstream.drvs]);
    } catch {
      // still referenced from elsewhere: the store keeps it
    }
  }
  if (top) await removePrefix(top);
});

forEachNix(
  ({ fixture, test }) => {
    let server: RunningServer;
    /** this Nix's prefix, and beside it the caches its tests publish to */
    let prefix: string;
    let storeDir: string;

    before(async () => {
      const fx = await ensureFixture({ name: fixture });
      server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
      prefix = await prefixFor(NOBODY_UID, `translate-${fixture}`);
      await fs.chmod(path.dirname(prefix), 0o755);
      storeDir = freshStoreDir();
      const url = `${server.url.replace(/\/$/, '')}/${path.basename(fx.tarball)}`;
      const r = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--store-dir', storeDir, '--url', url]);
      assert.equal(r.code, 0, `bootstrap with a 10-byte store dir:\n${r.stdout}\n${r.stderr}`);
    });

    after(async () => {
      await server?.close();
      if (prefix) await removePrefix(path.dirname(prefix));
      if (storeDir) await removePrefix(storeDir);
    });

    function translate(args: string[], from = `file://${upstream.dir}`, key = upstream.key) {
      return relonix(NOBODY_UID, ['translate', '--prefix', prefix, '--from', from, '--from-key', key, '--secret-key', mine.secret, ...args]);
    }

    /** A directory the uid can publish to. */
    async function cacheDir(name: string): Promise<string> {
      const d = path.join(path.dirname(prefix), name);
      await fs.mkdir(d);
      await fs.chown(d, NOBODY_UID, NOBODY_UID);
      return d;
    }

    test('with a store dir as long as /nix/store, relocation rewrites binary data too: nothing names /nix/store, and Nix defaults to the prefix store', async () => {
      const st = JSON.parse((await relonix(NOBODY_UID, ['status', '--prefix', prefix, '--json'])).stdout);
      assert.equal(st.storeDir, storeDir, 'every command finds the store dir from the prefix');
      assert.equal(st.relocation.counts.unrewritable, 0, 'no reference left in binary data');
      assert.ok(st.relocation.counts.binaryFiles > 10, 'binaries were rewritten in place');
      assert.deepEqual(await namingNixStore(storeDir), []);
      // libnixstore's compiled-in store dir is a string like any other: without NIX_STORE_DIR Nix uses the prefix's
      const r = await shAs(
        NOBODY_UID,
        `eval "$(${process.execPath} ${RELONIX} env --prefix ${prefix})"; unset NIX_STORE_DIR; nix-instantiate --eval -E builtins.storeDir`,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), `"${storeDir}"`);
    });

    test('derivation mode: the prefix evaluation translated from upstream, and nix-build then builds nothing', async () => {
      const to = await cacheDir('translated');
      const expr = path.join(top, 'expr', 'default.nix');
      const r = await translate(['--to', `file://${to}`, '--json', '--', expr]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      const res = JSON.parse(r.stdout);
      assert.equal(res.published.length, 4, 'three outputs and the source the script links to');
      assert.ok(res.published.every((p: string) => p.startsWith(`${storeDir}/`)));
      assert.deepEqual(res.missing, []);
      assert.deepEqual(res.refused, []);
      assert.equal(res.compressed.length, 1, 'the gzip file is named, with its package');
      assert.match(res.compressed[0].path, /-libgreet-1\.0$/);
      assert.equal(res.compressed[0].files[0].file, 'share/where.gz');
      assert.equal(res.compressed[0].files[0].format, 'gzip');
      for (const f of (await fs.readdir(to)).filter((n) => n.endsWith('.narinfo'))) {
        const ni = parseNarInfo(await fs.readFile(path.join(to, f), 'utf8'));
        assert.ok(ni.storePath.startsWith(`${storeDir}/`));
        assert.ok(ni.sigs[0]!.startsWith('prefix-1:'));
      }

      const before = (await lines(path.join(top, 'impure.log'))).length;
      const build = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-build', '--no-out-link', expr, ...onlyFrom(to)]);
      assert.equal(build.code, 0, build.stderr);
      assert.equal((await lines(path.join(top, 'impure.log'))).length, before, 'no builder ran: everything was substituted');
      assert.doesNotMatch(build.stderr, /will be built/);
      assert.match(build.stderr, /will be fetched/);
      const out = build.stdout.trim();
      assert.ok(out.startsWith(`${storeDir}/`) && out.endsWith('-hello-script-1.0'), out);

      const run = await shAs(NOBODY_UID, `${out}/bin/hello`);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout.trim(), new RegExp(`^hello from a source file read from ${storeDir}/[0-9a-z]{32}-libgreet-1\\.0/share/greeting\\.txt$`));
      const closure = (await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '-qR', out])).stdout.trim().split('\n');
      assert.equal(closure.length, 4);
      for (const p of closure) assert.deepEqual(await namingNixStore(p), [], `${p} names only the prefix's store`);
      const verify = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '--verify', '--check-contents']);
      assert.equal(verify.code, 0, verify.stderr);

      const again = await translate(['--to', `file://${to}`, '--json', '--', expr]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(JSON.parse(again.stdout).published, [], 'a second run finds everything in the target');
    });

    test('path mode: one upstream path and its closure, each hash part kept, in the prefix store dir', async () => {
      const to = await cacheDir('by-path');
      const greet = upstream.closure.find((p) => p.endsWith('-greet-1.0'))!;
      const lib = upstream.closure.find((p) => p.endsWith('-libgreet-1.0'))!;
      const r = await translate(['--to', `file://${to}`, greet]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /translated 2 paths/);
      const ni = parseNarInfo(await fs.readFile(path.join(to, `${path.basename(greet).slice(0, 32)}.narinfo`), 'utf8'));
      assert.equal(ni.storePath, path.join(storeDir, path.basename(greet)));
      assert.deepEqual(ni.references, [path.basename(lib)]);
      const mine2 = path.join(storeDir, path.basename(greet));
      const got = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '--realise', mine2, ...onlyFrom(to)]);
      assert.equal(got.code, 0, got.stderr);
      const run = await shAs(NOBODY_UID, `${mine2}/bin/greet`);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.trim(), `hello from a source file read from ${path.join(storeDir, path.basename(lib))}/share/greeting.txt`);
    });

    test('a wrong upstream key is refused with exit 3, in both modes, and nothing is published', async () => {
      const to = await cacheDir('wrong-key');
      const expr = path.join(top, 'expr', 'default.nix');
      for (const args of [['--', expr], [upstream.out]]) {
        const r = await translate(['--to', `file://${to}`, ...args], `file://${upstream.dir}`, mine.public);
        assert.equal(r.code, EXIT.integrity, `${r.stdout}\n${r.stderr}`);
        assert.match(r.stderr, /no valid signature by a trusted key/);
        assert.deepEqual(await fs.readdir(to), [], 'nothing published, not even nix-cache-info');
      }
    });

    /** A copy of the upstream cache, for a test to spoil. */
    async function upstreamCopy(name: string): Promise<string> {
      const d = path.join(path.dirname(prefix), name);
      execFileSync('cp', ['-a', upstream.dir, d]);
      execFileSync('chmod', ['-R', 'a+rX', d]);
      return d;
    }

    test('an upstream NAR whose hash differs from its signed narinfo is refused with exit 3, and nothing is published', async () => {
      const bad = await upstreamCopy('up-bad-nar');
      const lib = upstream.closure.find((p) => p.endsWith('-libgreet-1.0'))!;
      const niFile = path.join(bad, `${path.basename(lib).slice(0, 32)}.narinfo`);
      const ni = parseNarInfo(await fs.readFile(niFile, 'utf8'));
      // another NAR of the same size, its FileHash updated: only NarHash, which the signature covers, tells
      const nar = execFileSync('xz', ['-dc', path.join(bad, ni.url)]);
      const at = nar.indexOf('hello from a source file');
      nar.write('HELLO', at, 'latin1');
      const xz = execFileSync('xz', ['-c'], { input: nar });
      await fs.writeFile(path.join(bad, ni.url), xz);
      const hash = execFileSync('nix-hash', ['--type', 'sha256', '--flat', '--base32', path.join(bad, ni.url)], { encoding: 'utf8' }).trim();
      const text = (await fs.readFile(niFile, 'utf8'))
        .replace(/^FileHash: .*$/m, `FileHash: sha256:${hash}`)
        .replace(/^FileSize: .*$/m, `FileSize: ${xz.length}`);
      await fs.writeFile(niFile, text);
      const to = await cacheDir('bad-nar');
      const r = await translate(['--to', `file://${to}`, '--', path.join(top, 'expr', 'default.nix')], `file://${bad}`);
      assert.equal(r.code, EXIT.integrity, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /libgreet-1\.0: the NAR from .* has hash .* but its signed narinfo says/);
      assert.deepEqual(
        (await fs.readdir(to)).filter((n) => n.endsWith('.narinfo')),
        [],
        'no narinfo published',
      );
    });

    test('an upstream whose store dir is not as long as the prefix store dir is refused with exit 2', async () => {
      const other = await upstreamCopy('up-longer');
      await fs.writeFile(path.join(other, 'nix-cache-info'), 'StoreDir: /tmp/nix/store\nWantMassQuery: 1\nPriority: 40\n');
      const to = await cacheDir('longer');
      const r = await translate(['--to', `file://${to}`, upstream.out], `file://${other}`);
      assert.equal(r.code, EXIT.usage, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /serves the store \/tmp\/nix\/store \(14 bytes\), which cannot be rewritten in place/);
      assert.deepEqual(await fs.readdir(to), []);
    });

    const JOURNAL = () => path.join(prefix, 'var', 'relonix', 'translate', 'journal');

    /** A journal entry as the journal reads it back: `<hash part>.json`, once its temporary has been renamed. */
    const JOURNAL_ENTRY = /^[0-9a-z]{32}\.json$/;

    /**
     * Paths whose NAR is in `to` and whose narinfo the journal keeps for the commit (runs refused before
     * may have left others). An entry still in its temporary is being written, not kept: a kill then
     * loses it, and the re-run does that path again.
     */
    async function uncommitted(to: string): Promise<number> {
      let n = 0;
      for (const f of (await fs.readdir(JOURNAL()).catch(() => [] as string[])).filter((name) => JOURNAL_ENTRY.test(name))) {
        const e = JSON.parse(await fs.readFile(path.join(JOURNAL(), f), 'utf8').catch(() => '{}')) as { narInfo?: { url: string } };
        if (e.narInfo && existsSync(path.join(to, e.narInfo.url))) n++;
      }
      return n;
    }

    // Makes every journal entry stay a second in its temporary (fsync, before the rename): the window
    // in which a kill loses the entry, held open so that the test below meets it on every run.
    const SLOW_JOURNAL_C = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
    int fsync(int fd) {
      static int (*real)(int);
      if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
      char link[64], target[4096];
      snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(link, target, sizeof target - 1);
      if (n > 0) {
        target[n] = 0;
        struct timespec second = { 1, 0 };
        if (strstr(target, "/translate/journal/.relonix-")) nanosleep(&second, 0);
      }
      return real(fd);
    }
    `;

    /** The preload that holds journal entries in their temporaries, built for uid 4242 to load. */
    async function slowJournal(): Promise<string> {
      const src = path.join(top, 'slow-journal.c');
      const lib = path.join(top, 'slow-journal.so');
      await fs.writeFile(src, SLOW_JOURNAL_C);
      gcc(['-shared', '-fPIC', '-O1', '-o', lib, src, '-ldl']);
      await fs.chmod(lib, 0o755);
      return lib;
    }

    test('a translate killed while NARs are up leaves no narinfo; the re-run fetches only what it had not finished', async () => {
      const script = upstream.closure.find((p) => p.endsWith('-hello-script-1.0'))!;
      const scriptNar = parseNarInfo(await fs.readFile(path.join(upstream.dir, `${path.basename(script).slice(0, 32)}.narinfo`), 'utf8')).url;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      // the script's NAR never comes, the others do
      const slow = await startServer({
        dir: upstream.dir,
        handler: async (req, res) => {
          if (req.url !== `/${scriptNar}`) return false;
          await held;
          res.writeHead(503).end();
          return true;
        },
      });
      const to = await cacheDir('killed');
      try {
        const args = [
          'translate',
          '--prefix',
          prefix,
          '--from',
          slow.url,
          '--from-key',
          upstream.key,
          '--secret-key',
          mine.secret,
          '--to',
          `file://${to}`,
          '--',
          path.join(top, 'expr', 'default.nix'),
        ];
        const run = spawnRelonix(NOBODY_UID, args, [`LD_PRELOAD=${await slowJournal()}`]);
        let writing = 0;
        for (let i = 0; i < 600 && (await uncommitted(to)) < 3; i++) {
          writing = Math.max(writing, (await fs.readdir(JOURNAL()).catch(() => [] as string[])).filter((n) => !JOURNAL_ENTRY.test(n)).length);
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(writing > 0, 'journal entries were seen in their temporaries, and not counted');
        assert.equal(await uncommitted(to), 3, 'two outputs and the source are up, uncommitted');
        run.child.kill('SIGKILL');
        await run.done;
        assert.deepEqual(
          (await fs.readdir(to)).filter((n) => n.endsWith('.narinfo')),
          [],
          'no narinfo without every NAR',
        );
      } finally {
        release();
        await slow.close();
      }
      const fresh = await startServer({ dir: upstream.dir });
      try {
        const args = [
          'translate',
          '--prefix',
          prefix,
          '--from',
          fresh.url,
          '--from-key',
          upstream.key,
          '--secret-key',
          mine.secret,
          '--to',
          `file://${to}`,
          '--json',
          '--',
          path.join(top, 'expr', 'default.nix'),
        ];
        const r = await relonix(NOBODY_UID, args);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout).published.length, 4);
        assert.deepEqual(
          fresh.log.filter((x) => x.path.startsWith('/nar/')).map((x) => x.path),
          [`/${scriptNar}`],
          'only the NAR the killed run had not finished',
        );
      } finally {
        await fresh.close();
      }
      assert.equal(await uncommitted(to), 0, 'committed paths leave the journal');
    });

    test('relonix build --translate-from: what upstream built is translated into the build cache first, so nix-build builds nothing', async () => {
      // what earlier tests substituted is unreferenced: collect it, so only the translation can supply it
      const gc = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-collect-garbage']);
      assert.equal(gc.code, 0, gc.stderr);
      const cache = await cacheDir('build-cache');
      const expr = path.join(top, 'expr', 'default.nix');
      const before = (await lines(path.join(top, 'impure.log'))).length;
      const into = { prefix, cache: `file://${cache}`, secret: mine.secret };
      const from = ['--translate-from', `file://${upstream.dir}`];
      const r = await relonix(NOBODY_UID, buildArgv(into, [...from, '--translate-key', upstream.key.trim()], ['--no-out-link', expr]));
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /translated from file:\/\/.*: 4 paths published/);
      assert.equal((await lines(path.join(top, 'impure.log'))).length, before, 'no builder ran');
      assert.doesNotMatch(r.stderr, /will be built/);
      const out = r.stdout.trim().split('\n').pop()!;
      assert.ok(out.startsWith(`${storeDir}/`) && out.endsWith('-hello-script-1.0'), out);
      assert.ok(existsSync(path.join(cache, `${path.basename(out).slice(0, 32)}.narinfo`)), 'the output is in the build cache');
      const run = await shAs(NOBODY_UID, `${out}/bin/hello`);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /hello from a source file read from/);
      // an upstream other than cache.nixos.org without its key is refused before anything runs
      const nokey = await relonix(NOBODY_UID, buildArgv(into, from, [expr]));
      assert.equal(nokey.code, EXIT.usage, nokey.stderr);
      assert.match(nokey.stderr, /needs --translate-key/);
    });
  },
  { concurrently: true },
);
