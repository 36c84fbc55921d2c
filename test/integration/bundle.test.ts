// relonix bundle end to end. A prefix with a 10-byte store dir builds a closure with a program
// linked to a library in another store path (and to a glibc of the closure's own), a script naming
// both, a data file the program reads by its absolute store path (beside a file whose name is not
// UTF-8) and a symlink; the bundle of it then runs on a second host (helpers/second-host.ts): no
// prefix, no store, no Nix, no node, a uid with no passwd entry, coreutils or busybox alone. What the
// launcher refuses, and how it behaves when runs meet, are watched there too.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { bootstrappedPrefix } from '../helpers/build-rig.ts';
import { EXIT, NOBODY_UID, type RunResult, relonix } from '../helpers/cli.ts';
import { removePrefix } from '../helpers/paths.ts';
import { BUNDLE, HOST, onSecondHost, type SecondHost, sections, shims } from '../helpers/second-host.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

requireRoot('a second host is a mount namespace, and its user a uid of its own');
const BUSYBOX = requireTool('busybox', 'busybox-static');
requireTool('gcc');
requireTool('setpriv');

let prefix: string;
let top: string;
let storeDir: string;
let bundle: string;
let runDir: string;
let made: RunResult;

/** A store dir of 10 bytes that nothing uses yet. */
function freshStoreDir(): string {
  for (;;) {
    const d = `/tmp/b${randomBytes(8).toString('hex').slice(0, 4)}`;
    if (!existsSync(d)) return d;
  }
}

/** The closure: glibc copied from the host into a store path, a library, a data file, a busybox sh, the program. */
function expression(busybox: string): string {
  return `let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
    PATH = "/usr/bin:/bin";
  };
  libc = mk "libc" ''
    mkdir -p $out/lib
    cp -L /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/libc.so.6 $out/lib/
  '';
  data = mk "data" ''
    mkdir -p $out/share
    echo "the data file says hi" > $out/share/msg.txt
    echo "a name that is not UTF-8" > "$out/share/$(printf 'caf\\351.txt')"
  '';
  greet = mk "greet" ''
    mkdir -p $out/lib
    printf 'const char *greet(void) { return "hello from libgreet"; }\\n' > g.c
    gcc -shared -fPIC -o $out/lib/libgreet.so g.c -Wl,-rpath,\${libc}/lib
  '';
  sh = mk "busybox" ''
    mkdir -p $out/bin
    cp ${busybox} $out/bin/busybox
    ln -s busybox $out/bin/sh
  '';
  app = mk "app" ''
    mkdir -p $out/bin
    cat > app.c <<'C'
    #include <signal.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/wait.h>
    #include <unistd.h>
    const char *greet(void);
    static pid_t child;
    static void term(int s) {
      (void)s;
      printf("app got SIGTERM\\n");
      fflush(stdout);
      if (child > 0) { kill(child, SIGTERM); waitpid(child, 0, 0); }
      _exit(143);
    }
    int main(int argc, char **argv) {
      printf("%s\\n", greet());
      FILE *f = fopen(DATA, "r");
      char line[256];
      if (!f || !fgets(line, sizeof line, f)) { perror(DATA); return 9; }
      printf("data: %s", line);
      if (argc > 1 && strcmp(argv[1], "cat") == 0) { int c; while ((c = getchar()) != EOF) putchar(c); }
      if (argc > 2 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
      if (argc > 1 && strcmp(argv[1], "spawn") == 0) {
        signal(SIGTERM, term);
        child = fork();
        if (child == 0) { execl(HELPER, HELPER, (char *)0); perror(HELPER); _exit(127); }
        printf("helper %d\\n", (int)child);
        fflush(stdout);
        for (;;) pause();
      }
      return 0;
    }
    C
    printf '#include <stdio.h>\\n#include <unistd.h>\\nint main(void) { printf("helper up\\\\n"); fflush(stdout); for (;;) pause(); }\\n' > helper.c
    ld=\${libc}/lib/ld-linux-x86-64.so.2
    gcc -o $out/bin/app app.c -DDATA="\\"\${data}/share/msg.txt\\"" -DHELPER="\\"$out/bin/helper\\"" \\
      -L\${greet}/lib -lgreet -Wl,-rpath,\${greet}/lib:\${libc}/lib -Wl,--dynamic-linker=$ld
    gcc -o $out/bin/helper helper.c -Wl,-rpath,\${libc}/lib -Wl,--dynamic-linker=$ld
    ln -s $out/bin/app $out/bin/app-link
    cat > $out/bin/run <<S
    #!\${sh}/bin/sh
    # the program ($out/bin/app, by its symlink) and the library it links to (\${greet}/lib/libgreet.so)
    [ -r \${greet}/lib/libgreet.so ] || { echo "no library at \${greet}/lib/libgreet.so" >&2; exit 8; }
    exec $out/bin/app-link "\\$@"
    S
    chmod +x $out/bin/run
  '';
in { inherit app; }
`;
}

before(async () => {
  storeDir = freshStoreDir();
  ({ prefix, top } = await bootstrappedPrefix(NOBODY_UID, 'bundle', '2.8', ['--store-dir', storeDir]));
  await fs.chmod(top, 0o755);
  await fs.writeFile(path.join(top, 'app.nix'), expression(BUSYBOX));
  const out = path.join(top, 'out');
  await fs.mkdir(out);
  await fs.chown(out, NOBODY_UID, NOBODY_UID);
  bundle = path.join(out, 'app.run');
  made = await relonix(NOBODY_UID, ['bundle', '--prefix', prefix, '--file', path.join(top, 'app.nix'), 'app', '--entry', 'bin/run', '-o', bundle]);
  assert.equal(made.code, 0, `${made.stdout}\n${made.stderr}`);
  runDir = /^run dir: (\S+)/m.exec(made.stdout)![1]!;
});

after(async () => {
  if (top) await removePrefix(top);
  if (storeDir) await removePrefix(storeDir);
});

function host(h: Omit<SecondHost, 'bundle'> & { bundle?: string }): Promise<Map<string, string>> {
  return onSecondHost({ bundle, ...h }).then((r) => {
    const s = sections(r.stdout);
    assert.ok(s.has('code'), `the second host ran the script:\n${r.stdout}\n${r.stderr}`);
    return s;
  });
}

const OUTPUT = 'hello from libgreet\ndata: the data file says hi';

test('relonix bundle writes one executable file and says which run dir it is for', async () => {
  assert.match(made.stdout, /^wrote .*app\.run \([\d.]+ MiB\): 5 store paths/m);
  assert.match(runDir, /^\/tmp\/[0-9a-z]{5}$/, 'a 10-byte store dir gets /tmp/ and 5 characters');
  assert.match(made.stdout, new RegExp(`^run dir: ${runDir} \\(10 bytes, as long as the store dir ${storeDir}\\)$`, 'm'));
  assert.match(made.stderr, /building app with nix-build/);
  const st = await fs.stat(bundle);
  assert.equal(st.mode & 0o777, 0o755);
  assert.equal(st.uid, NOBODY_UID);
  const head = (await fs.readFile(bundle)).subarray(0, 4096).toString('latin1');
  assert.match(head, /^#!\/bin\/sh\n/);
  assert.ok(!(await fs.readdir(path.join(prefix, 'var', 'relonix', 'bundle'))).length, 'its GC roots are gone');
});

test('on a second host (coreutils): output, stdin and exit status pass through, the loader finds only run-dir libraries, and nothing there names the build store', async () => {
  const s = await host({
    script: `B=${BUNDLE}
echo @@first; $B exit 3; echo "code $?"
echo @@stdin; printf 'from stdin\\n' | $B cat; echo "code $?"
echo @@ld; LD_DEBUG=libs $B 2>&1 >/dev/null`,
    after: `echo @@store; grep -rl --binary-files=text ${storeDir} ${runDir}; find ${runDir} -type l -exec readlink {} \\; | grep -c ^${storeDir}
echo @@links; readlink ${runDir}/*-app/bin/app-link
echo @@latin1; cat ${runDir}/*-data/share/"$(printf 'caf\\351.txt')"
echo @@files; cd ${runDir} && find . | sort`,
  });
  assert.equal(s.get('first'), `${OUTPUT}\ncode 3`);
  assert.equal(s.get('stdin'), `${OUTPUT}\nfrom stdin\ncode 0`);
  // the host's sh (dash) is a host program and says so first; from its exec of the entry on, only the run dir
  const ld = s.get('ld')!.split('\n');
  const handover = ld.findIndex((l) => /transferring control: \/bin\/sh$/.test(l));
  assert.ok(handover >= 0, s.get('ld'));
  const entryLines = ld.slice(handover + 1).join('\n');
  const libs = [...entryLines.matchAll(/(?:file=|calling init: )(\/\S+)/g)].map((m) => m[1]!);
  assert.ok(libs.some((l) => l.endsWith('-greet/lib/libgreet.so')) && libs.some((l) => l.endsWith('-libc/lib/libc.so.6')), entryLines);
  assert.deepEqual(
    libs.filter((l) => !l.startsWith(`${runDir}/`)),
    [],
  );
  assert.match(entryLines, new RegExp(`transferring control: ${runDir}/\\w+-app/bin/app-link`));
  assert.equal(s.get('store'), '0', 'no file names the build store dir, and no symlink points into it');
  assert.match(s.get('links')!, new RegExp(`^${runDir}/\\w+-app/bin/app$`));
  assert.equal(s.get('latin1'), 'a name that is not UTF-8', 'a file name that is not UTF-8 keeps its bytes');
  assert.match(s.get('files')!, /\/bin\/app-link$/m);
});

test('on busybox alone (its sh as /bin/sh, its applets the only tools), the same', async () => {
  const s = await host({
    busybox: BUSYBOX,
    script: `B=${BUNDLE}
echo @@tools; ls ${HOST}/tools | grep -c .; readlink ${HOST}/tools/tar
echo @@first; $B exit 5; echo "code $?"
echo @@stdin; printf 'from stdin\\n' | $B cat; echo "code $?"
echo @@ld; LD_DEBUG=libs $B 2>&1 >/dev/null`,
  });
  assert.match(s.get('tools')!, /busybox$/);
  assert.equal(s.get('first'), `${OUTPUT}\ncode 5`);
  assert.equal(s.get('stdin'), `${OUTPUT}\nfrom stdin\ncode 0`);
  // busybox is static: every line the loader writes is the entry's
  const libs = [...s.get('ld')!.matchAll(/(?:file=|calling init: |transferring control: )(\/\S+)/g)].map((m) => m[1]!);
  assert.ok(libs.length > 5, s.get('ld'));
  assert.deepEqual(
    libs.filter((l) => !l.startsWith(`${runDir}/`)),
    [],
  );
});

test('a second run starts the entry without unpacking: no tool runs and the run dir is untouched', async () => {
  const tools = ['tar', 'gzip', 'sha256sum', 'openssl', 'tail', 'dd', 'mkdir', 'mv', 'ln', 'chmod', 'rm', 'ls'];
  const s = await host({
    before: shims(tools),
    script: `B=${BUNDLE}
echo @@first; PATH=${HOST}/shim:$PATH $B exit 0 >/dev/null; echo "code $?"; grep -c '^tar ' calls
echo @@before; ls -la --time-style=full-iso ${runDir} ${runDir}/*-app/bin
rm calls
echo @@second; PATH=${HOST}/shim:$PATH $B exit 4; echo "code $?"
echo @@calls; cat calls 2>/dev/null
echo @@after; ls -la --time-style=full-iso ${runDir} ${runDir}/*-app/bin`,
  });
  assert.equal(s.get('first'), 'code 0\n1', 'the first run unpacks with tar, once');
  assert.equal(s.get('second'), `${OUTPUT}\ncode 4`);
  assert.equal(s.get('calls'), '', 'the second run called none of the tools');
  assert.equal(s.get('after'), s.get('before'));
});

test('concurrent first runs unpack once; a run killed while unpacking leaves nothing that the next run trusts', async () => {
  const s = await host({
    before: `${shims(['tar'], 'sleep 1\\n')}`,
    script: `B=${BUNDLE}
export PATH=${HOST}/shim:$PATH
for i in 1 2 3; do $B exit $i > out$i 2>&1 & done; wait
echo @@runs; for i in 1 2 3; do cat out$i; done
echo @@tar; grep -c '^tar ' calls
echo @@tmp; ls -A /tmp`,
  });
  assert.equal(s.get('runs'), `${OUTPUT}\n`.repeat(3).trimEnd());
  assert.equal(s.get('tar'), '1', 'one run unpacked, the others waited for it');
  assert.equal(s.get('tmp'), path.basename(runDir), 'no lock or half-unpacked dir is left');

  const k = await host({
    // the unpacking stalls half-way: the decompressed stream stops after 300 kB
    before: `printf '#!/bin/sh\\n${HOST}/tools/gzip "$@" | { ${HOST}/tools/head -c 300000; : > ${HOST}/w/stalled; sleep 60; }\\n' > ${HOST}/shim/gzip
chmod 755 ${HOST}/shim/gzip`,
    script: `B=${BUNDLE}
PATH=${HOST}/shim:$PATH setsid $B > out 2>&1 & p=$!
while [ ! -e stalled ]; do sleep 0.05; done
sleep 0.3
echo @@pid $p
echo @@half; ls -A /tmp; ls ${runDir}.u$p | grep -c .
kill -9 -$p; wait
echo @@rerun; $B exit 7; echo "code $?"
echo @@tmp; ls -A /tmp`,
  });
  const half = k.get('half')!.split('\n');
  assert.deepEqual(half.slice(0, 2), [`${path.basename(runDir)}.lock`, `${path.basename(runDir)}.u${k.get('pid')}`], 'the lock and the dir being unpacked');
  assert.ok(Number(half[2]) >= 1, 'some store paths were unpacked before the kill');
  assert.equal(k.get('rerun'), `${OUTPUT}\ncode 7`);
  assert.equal(k.get('tmp'), path.basename(runDir), 'the stale lock and the half-unpacked dir were cleared');
});

test('without dd tail cuts the payload out, without openssl sha256sum checks it; a missing tool is named, before anything is written', async () => {
  const s = await host({
    // no openssl either: sha256sum checks the payload
    before: `rm ${HOST}/tools/dd ${HOST}/tools/gzip ${HOST}/tools/openssl; ln -s "$(command -v gzip)" ${HOST}/shim/gzip`,
    script: `echo @@nogzip; ${BUNDLE} 2>&1; echo "code $?"
echo @@tmp; ls -A /tmp
echo @@nodd; PATH=$PATH:${HOST}/shim ${BUNDLE} exit 3; echo "code $?"`,
  });
  assert.match(
    s.get('nogzip')!,
    /^relonix bundle: error: this host has no gzip on PATH \(\/var\/tmp\/host\/tools\); the bundle needs sh, dd or tail, tar, gzip and sha256sum/,
  );
  assert.match(s.get('nogzip')!, /fix: install them: coreutils, tar and gzip, or busybox alone[\s\S]*\ncode 127$/);
  assert.equal(s.get('tmp'), '');
  assert.equal(s.get('nodd'), `${OUTPUT}\ncode 3`);
});

test('a flipped byte or a truncated copy is refused before anything is written', async () => {
  const data = await fs.readFile(bundle);
  const flipped = path.join(top, 'flipped.run');
  const at = data.length - 1000;
  data[at] = data[at]! ^ 0xff;
  await fs.writeFile(flipped, data, { mode: 0o755 });
  const s = await host({
    bundle: flipped,
    before: `head -c ${data.length - 5000} ${BUNDLE} > ${HOST}/short.run; chmod 755 ${HOST}/short.run`,
    script: `echo @@flipped; ${BUNDLE} 2>&1; echo "code $?"
echo @@short; ${HOST}/short.run 2>&1; echo "code $?"
echo @@tmp; ls -A /tmp`,
  });
  assert.match(s.get('flipped')!, /relonix bundle: error: .*app\.run is damaged: its payload's sha256 is [0-9a-f]{64}, not [0-9a-f]{64}.*nothing was unpacked/);
  assert.match(s.get('flipped')!, /fix: copy or download the bundle again\ncode 126$/);
  assert.match(s.get('short')!, /short\.run is damaged.*\n.*\ncode 126$/);
  assert.equal(s.get('tmp'), '', 'nothing was written');
});

test('a noexec /tmp is refused with the override, and RELONIX_RUN_DIR of the same length works; another length is refused with the one it needs', async () => {
  const s = await host({
    before: 'mount -o remount,noexec /tmp',
    script: `B=${BUNDLE}
echo @@noexec; $B 2>&1; echo "code $?"
echo @@tmp; ls -A /tmp
echo @@override; RELONIX_RUN_DIR=/var/tmp/a $B exit 6; echo "code $?"
echo @@again; RELONIX_RUN_DIR=/var/tmp/a $B exit 2; echo "code $?"
echo @@long; RELONIX_RUN_DIR=/var/tmp/ab $B 2>&1; echo "code $?"
echo @@relative; RELONIX_RUN_DIR=var/tmp/ab $B 2>&1; echo "code $?"`,
    after: `echo @@names; grep -rl --binary-files=text -e ${runDir} -e ${storeDir} /var/tmp/a; echo "grep $?"
echo @@link; readlink /var/tmp/a/*-app/bin/app-link`,
  });
  assert.match(s.get('noexec')!, new RegExp(`error: ${runDir} would be on a filesystem mounted noexec \\(/tmp\\)`));
  assert.match(s.get('noexec')!, /fix: set RELONIX_RUN_DIR to a new dir of 10 bytes .* e\.g\. RELONIX_RUN_DIR=\/var\/tmp\/[0-9a-f]\ncode 126$/);
  assert.equal(s.get('tmp'), '');
  assert.equal(s.get('override'), `${OUTPUT}\ncode 6`);
  assert.equal(s.get('again'), `${OUTPUT}\ncode 2`);
  assert.match(s.get('long')!, /RELONIX_RUN_DIR=\/var\/tmp\/ab is 11 bytes; this bundle needs a dir of exactly 10/);
  assert.match(s.get('long')!, /code 126$/);
  assert.match(s.get('relative')!, /RELONIX_RUN_DIR=var\/tmp\/ab is not an absolute path[\s\S]*code 126$/);
  assert.equal(s.get('names'), 'grep 1', 'the files name the override, not the default run dir nor the build store');
  assert.match(s.get('link')!, /^\/var\/tmp\/a\/\w+-app\/bin\/app$/);
});

test("a run dir owned by someone else, or holding other files, is refused; root does not run a user's run dir either", async () => {
  const s = await host({
    before: `mkdir -m 755 ${runDir}`,
    script: `echo @@other; ${BUNDLE} 2>&1; echo "code $?"`,
  });
  assert.match(s.get('other')!, new RegExp(`error: ${runDir} belongs to another user \\(uid 0\\)`));
  assert.match(s.get('other')!, /fix: set RELONIX_RUN_DIR to a new dir of 10 bytes[\s\S]*code 126$/);

  const c = await host({
    script: `mkdir ${runDir}; echo mine > ${runDir}/notes
echo @@content; ${BUNDLE} 2>&1; echo "code $?"
echo @@kept; cat ${runDir}/notes
rm ${runDir}/notes; rmdir ${runDir}; ${BUNDLE} exit 0 > /dev/null`,
    after: `echo @@root; ${BUNDLE} 2>&1; echo "code $?"`,
  });
  assert.match(
    c.get('content')!,
    new RegExp(`error: ${runDir} already exists and holds other files\\n  fix: move them away, or set RELONIX_RUN_DIR[\\s\\S]*code 126$`),
  );
  assert.equal(c.get('kept'), 'mine');
  assert.match(c.get('root')!, new RegExp(`error: ${runDir} belongs to another user \\(uid ${NOBODY_UID}\\)[\\s\\S]*code 126$`));
});

test('the launcher execs the entry: a helper it starts runs from the run dir too, and SIGTERM to the bundle pid reaches the entry', async () => {
  const s = await host({
    script: `${BUNDLE} spawn > out 2>&1 & p=$!
while ! grep -q 'helper up' out; do sleep 0.05; done
h=$(grep '^helper [0-9]' out); h=\${h#helper }
echo @@exe; readlink /proc/$p/exe; readlink /proc/$h/exe
kill -TERM $p; wait $p; echo "@@code-entry $?"
echo @@out; cat out
echo @@helper; [ -e /proc/$h ] && echo alive || echo gone`,
  });
  const [entry, helper] = s.get('exe')!.split('\n');
  assert.match(entry!, new RegExp(`^${runDir}/\\w+-app/bin/app$`), 'the bundle pid is the program itself, no shell left in between');
  assert.match(helper!, new RegExp(`^${runDir}/\\w+-app/bin/helper$`));
  assert.equal(s.get('code-entry'), '143');
  assert.match(s.get('out')!, /^helper up$/m);
  assert.match(s.get('out')!, /\napp got SIGTERM$/, 'the entry got the signal and ended its helper');
  assert.equal(s.get('helper'), 'gone');
});

test('--bundle-info says what the bundle holds and unpacks nothing', async () => {
  const tools = ['tar', 'gzip', 'sha256sum', 'openssl', 'tail', 'dd', 'mkdir'];
  const s = await host({
    before: shims(tools),
    script: `echo @@info; PATH=${HOST}/shim:$PATH ${BUNDLE} --bundle-info; echo "code $?"
echo @@calls; cat calls 2>/dev/null
echo @@tmp; ls -A /tmp`,
  });
  const info = s.get('info')!;
  const sha = /^payload: sha256 ([0-9a-f]{64})/m.exec(made.stdout)![1]!;
  assert.match(info, /^entry: +\w+-app\/bin\/run$/m);
  assert.match(info, new RegExp(`^closure: +5 store paths, [\\d.]+ MiB, for x86_64-linux, built for the store dir ${storeDir}$`, 'm'));
  assert.match(info, new RegExp(`^run dir: +${runDir} \\(not unpacked here yet`, 'm'));
  assert.match(info, new RegExp(`sha256 ${sha}$`, 'm'));
  assert.match(info, /^ {2}\w+-greet$/m);
  assert.match(info, /^needs: +sh, dd or tail, tar, gzip and sha256sum/m);
  assert.match(info, /code 0$/);
  assert.equal(s.get('calls'), '');
  assert.equal(s.get('tmp'), '');
});

test('relonix bundle clears what a killed run left (a half-written file, GC roots), and only that', async () => {
  const out = path.join(top, 'out');
  const dead = 2147483647; // above any pid_max: no such process
  const leftovers = [path.join(out, `.relonix-again.run.${dead}.0a1b2c3d.tmp`), path.join(prefix, 'var', 'relonix', 'bundle', `roots-${dead}-x1y2z3`)];
  const live = path.join(out, `.relonix-again.run.${process.pid}.0a1b2c3d.tmp`);
  // left by runs of the same user
  await fs.writeFile(leftovers[0]!, 'half a bundle');
  await fs.mkdir(leftovers[1]!);
  await fs.writeFile(live, 'a run still going');
  for (const p of [...leftovers, live]) await fs.chown(p, NOBODY_UID, NOBODY_UID);
  const r = await relonix(NOBODY_UID, [
    'bundle',
    '--prefix',
    prefix,
    '--file',
    path.join(top, 'app.nix'),
    'app',
    '--entry',
    'bin/run',
    '-o',
    path.join(out, 'again.run'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  for (const p of leftovers) assert.ok(!existsSync(p), `${p} is gone`);
  assert.ok(existsSync(live), "a live run's temporary is left alone");
  assert.deepEqual(await fs.readFile(path.join(out, 'again.run')), await fs.readFile(bundle), 'the same closure, the same bytes');
  await fs.rm(live);
});

test('relonix bundle refuses what cannot be bundled, saying what to pass instead', async () => {
  const file = path.join(top, 'app.nix');
  const out = path.join(top, 'out', 'x.run');
  const rootOnly = path.join(top, 'root-only');
  await fs.mkdir(rootOnly, { mode: 0o755 });
  const fifo = path.join(top, 'out', 'pipe');
  execFileSync('mkfifo', [fifo]);
  await fs.chown(fifo, NOBODY_UID, NOBODY_UID);
  const cases: [string[], RegExp][] = [
    [['--file', file, 'app', '-o', out], /bin holds 4 programs \(app, app-link, helper, run\): which one[\s\S]*fix: name it: --entry bin\/app/],
    [['--file', file, 'app', '--entry', 'bin/nope', '-o', out], /the entry .*bin\/nope does not exist/],
    [['--file', file, 'app', '--entry', '../x', '-o', out], /the entry \.\.\/x leaves/],
    [['--file', file, 'app', '--entry', 'bin/run', '-o', path.join(top, 'out')], /-o .* is a directory/],
    [['--file', file, 'app', '--entry', 'bin/run', '-o', path.join(rootOnly, 'x.run')], /is not a directory this user can write in/],
    [['--file', file, 'app', '--entry', 'bin/run', '-o', fifo], /-o .*pipe is a named pipe, not a file: the bundle would replace it/],
  ];
  for (const [args, why] of cases) {
    const r = await relonix(NOBODY_UID, ['bundle', '--prefix', prefix, ...args]);
    assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why);
  }
  assert.ok(!existsSync(out), 'nothing was written');
  assert.ok((await fs.lstat(fifo)).isFIFO(), 'the pipe is still a pipe');
});
