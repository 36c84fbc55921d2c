// The relay the bin/ wrappers leave beside each command, in the shells a host may have as /bin/sh
// (dash, bash, busybox): what the translator writes into the command's lease reaches the command's
// stderr, and the relay ends with the command, so whoever waits for that stderr to close (a pipe,
// `$(...)`) does not wait on the relay; a process the command left behind holding the lease does
// not keep the stderr open; a lease that cannot be made costs the command nothing.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { layout } from '../../src/prefix/layout.ts';
import { translatorFiles } from '../../src/translator/config.ts';
import { tellClients } from '../../src/translator/notes.ts';
import { ensureScript } from '../../src/translator/setup.ts';
import { readProcStat } from '../../src/util/proc.ts';
import { shQuote } from '../../src/util/shell.ts';
import { requireTool } from '../helpers/tools.ts';
import { waitUntil } from '../helpers/wait.ts';

requireTool('dash');
requireTool('bash');
requireTool('busybox');

const SHELLS: [string, string[]][] = [
  ['dash', []],
  ['bash', []],
  ['busybox', ['sh']],
];

let dir: string;
let f: ReturnType<typeof translatorFiles>;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-relay-'));
  // a prefix with a space and a quote: the script quotes what it names
  const l = layout(path.join(dir, "p q'r"), path.join(dir, 'st'));
  f = translatorFiles(l);
  await fs.mkdir(f.dir, { recursive: true });
  await fs.writeFile(f.config, '{}\n');
  // this test process plays the running translator: the wrappers start none
  await fs.writeFile(f.server, `${process.pid} ${readProcStat(process.pid)!.startTime} 1\n`);
  await fs.writeFile(f.ensureScript, ensureScript(l, f, process.execPath, path.join(dir, 'no-relonix.mjs')));
});
after(() => fs.rm(dir, { recursive: true, force: true }));

interface Run {
  child: ChildProcessWithoutNullStreams;
  stdout: string;
  stderr: string;
  /** the first line the command printed */
  line: Promise<string>;
  /** stdout and stderr closed, and the command's status */
  closed: Promise<number | null>;
}

/** `script` after the wrappers' ensure script, in `shell`; `caller` runs before it, as the wrapper's caller. */
function run(shell: [string, string[]], script: string, caller = ''): Run {
  const child = spawn(shell[0], [...shell[1], '-c', `${caller}\n. ${shQuote(f.ensureScript)}\n${script}`], { stdio: 'pipe' });
  const r = { child, stdout: '', stderr: '' } as Run;
  r.line = new Promise((resolve) =>
    child.stdout.on('data', (d) => {
      r.stdout += d;
      if (r.stdout.includes('\n')) resolve(r.stdout.split('\n')[0]!);
    }),
  );
  child.stderr.on('data', (d) => (r.stderr += d));
  r.closed = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  return r;
}

for (const shell of SHELLS) {
  const name = shell[0];
  test(`[${name}] what the translator writes into the lease reaches the command's stderr, and the relay ends with the command`, async () => {
    const r = run(shell, 'echo $$; read -r go; echo "the command\'s own" >&2');
    const pid = Number(await r.line);
    const lease = path.join(f.leases, String(pid));
    assert.ok((await fs.lstat(lease)).isFIFO(), 'the lease is a FIFO');
    await tellClients(f, 'relonix: refused /st/x from upstream\n');
    await tellClients(f, 'relonix: warning: the upstream https://reader:s3cret@cache.example/x cannot be reached\n');
    r.child.stdin.end('go\n');
    assert.equal(await r.closed, 0, r.stderr);
    assert.equal(r.stderr.split('relonix: refused /st/x from upstream\n').length, 2, r.stderr);
    assert.match(r.stderr, /the upstream https:\/\/\*\*\*@cache\.example\/x cannot be reached/, "a URL's credentials are redacted, as the CLI does");
    assert.doesNotMatch(r.stderr, /s3cret|reader/);
    assert.match(r.stderr, /the command's own/);
    // the relay's watch removes the lease once it sees the command gone
    await waitUntil(
      'the lease is removed',
      () =>
        fs.lstat(lease).then(
          () => false,
          () => true,
        ),
      { ms: 5000, every: 100 },
    );
    await tellClients(f, 'relonix: nobody hears this\n');
  });

  test(`[${name}] a process the command left behind holding the lease does not hold its stderr open`, { timeout: 20_000 }, async () => {
    const r = run(shell, 'sleep 30 >/dev/null 2>&1 &\necho $!');
    const left = Number(await r.line);
    try {
      assert.equal(await r.closed, 0, r.stderr);
      assert.doesNotThrow(() => process.kill(left, 0), 'stderr closed while what the command left behind still runs');
      assert.equal(r.stderr, '');
    } finally {
      process.kill(left, 'SIGKILL');
    }
  });
}

test("the caller's own descriptors 8 and 9 reach the command as they were, and the relay takes free ones", async () => {
  const mine = path.join(dir, 'mine');
  await fs.writeFile(mine, '');
  const r = run(SHELLS[0]!, 'echo $$; read -r go; readlink /proc/$$/fd/9 /proc/$$/fd/8', `exec 9>>'${mine}' 8<'${mine}'`);
  const pid = Number(await r.line);
  await tellClients(f, "relonix: heard beside the caller's descriptors\n");
  r.child.stdin.end('go\n');
  assert.equal(await r.closed, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [String(pid), mine, mine]);
  assert.equal(r.stderr, "relonix: heard beside the caller's descriptors\n");
});

test('a lease that cannot be made: the command runs as it would, and nothing is said about it', async () => {
  await fs.rm(f.leases, { recursive: true, force: true });
  await fs.writeFile(f.leases, 'not a directory\n');
  try {
    const r = run(SHELLS[0]!, 'echo ran');
    assert.equal(await r.closed, 0);
    assert.equal(r.stdout, 'ran\n');
    assert.equal(r.stderr, '');
  } finally {
    await fs.rm(f.leases, { force: true });
  }
});

test("with the translator's port, what it says reaches only the commands asking it (or a process under one); with none asking, every lease", async () => {
  // this test process plays the translator, listening on loopback
  const server = net.createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as net.AddressInfo).port;
  const bash = SHELLS[1]!;
  try {
    // one asks itself, one through a child (as `relonix run` through its Nix), one only waits (an idle nix-shell)
    const asks = run(bash, `exec 3<>/dev/tcp/127.0.0.1/${port}; echo $$; read -r go`);
    const under = run(bash, `echo $$; bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}; echo connected >&2; read -r go'`);
    const idle = run(bash, 'echo $$; read -r go');
    const pids = await Promise.all([asks.line, under.line, idle.line]);
    await waitUntil('the child of the second command is connected', () => under.stderr.includes('connected'), { ms: 5000 });
    await tellClients(f, 'relonix: for the askers\n', port);
    // a port nobody is connected to: the askers cannot be told apart, so every lease hears it
    await tellClients(f, 'relonix: for everyone\n', port + 1 === 65536 ? port - 1 : port + 1);
    for (const r of [asks, under, idle]) r.child.stdin.end('go\n');
    for (const r of [asks, under, idle]) assert.equal(await r.closed, 0, r.stderr);
    assert.equal(asks.stderr, 'relonix: for the askers\nrelonix: for everyone\n', `pid ${pids[0]}`);
    assert.equal(under.stderr, 'connected\nrelonix: for the askers\nrelonix: for everyone\n', `pid ${pids[1]}`);
    assert.equal(idle.stderr, 'relonix: for everyone\n', `pid ${pids[2]}`);
  } finally {
    server.close();
  }
});

test('on a terminal Nix may draw its progress bar on, what the translator says starts its line anew; on a dumb one, or with NO_COLOR, as it is', async () => {
  requireTool('script');
  for (const [env, clear] of [
    [{ TERM: 'xterm' }, true],
    [{ TERM: 'dumb' }, false],
    [{ TERM: 'xterm', NO_COLOR: '1' }, false],
  ] as const) {
    // script(1) gives the command a terminal: its stdout and stderr both come out of script's stdout
    const child = spawn('script', ['-qec', `bash -c ${shQuote(`. ${shQuote(f.ensureScript)}; echo "pid $$"; read -r go`)}`, '/dev/null'], {
      env: { PATH: process.env.PATH, ...env },
      stdio: 'pipe',
    });
    let out = '';
    const started = new Promise<void>((ok) =>
      child.stdout.on('data', (d) => {
        out += d;
        if (/pid \d+\r?\n/.test(out)) ok();
      }),
    );
    const closed = new Promise((ok) => child.on('close', ok));
    await started;
    await tellClients(f, 'relonix: said on a terminal\n');
    child.stdin.write('go\n');
    await closed;
    assert.ok(out.includes(`${clear ? '\r\x1b[K' : '\n'}relonix: said on a terminal\r\n`), `${JSON.stringify(env)}: ${JSON.stringify(out)}`);
    assert.equal(out.includes('\x1b[K'), clear, JSON.stringify(out));
  }
});
