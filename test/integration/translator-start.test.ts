// How the bin/ wrappers start a prefix's translator when none runs: the quick start binds the port,
// hands the listening socket to the server it starts and returns at once, so Nix loads while the
// server does. Whatever it cannot do (the port taken, by anyone) falls to the full start, which says
// what is wrong; a server that fails after it took the socket says so in the commands' leases.
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before } from 'node:test';
import { generateKey } from '../../src/cache/keys.ts';
import { processAlive } from '../../src/util/proc.ts';
import { EXIT, NOBODY_UID, relonix, shAs } from '../helpers/cli.ts';
import { type Mirror, serveFixture } from '../helpers/mirror.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { RELONIX, removePrefix, shortPrefix } from '../helpers/paths.ts';
import { waitUntil } from '../helpers/wait.ts';

/** The server file's pid, start time and port, when there is one. */
function serverLine(prefix: string): { pid: number; start: string; port: number } | undefined {
  let text = '';
  try {
    text = readFileSync(path.join(prefix, 'var', 'relonix', 'translator', 'server'), 'utf8');
  } catch {
    // none: no server has written one, or the last one removed it
  }
  const [pid, start, port] = text.trim().split(' ');
  return pid && start && port ? { pid: Number(pid), start, port: Number(port) } : undefined;
}

/** The pids of the translator servers of `prefix` that run now. */
async function servers(prefix: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const argv = (await fs.readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv.includes('serve') && argv.includes(prefix)) out.push(Number(p));
  }
  return out;
}

forEachNix(({ fixture, test }) => {
  let mirror: Mirror;
  let prefix: string;

  function inPrefix(script: string) {
    return shAs(NOBODY_UID, `eval "$(${process.execPath} ${RELONIX} env --prefix ${prefix})"; ${script}`);
  }

  async function stop(): Promise<void> {
    const r = await relonix(NOBODY_UID, ['translator', 'stop', '--prefix', prefix]);
    assert.equal(r.code, EXIT.ok, r.stderr);
    await waitUntil('no server is left', async () => (await servers(prefix)).length === 0);
  }

  before(async () => {
    mirror = await serveFixture(fixture);
    prefix = await shortPrefix(NOBODY_UID);
    // an upstream that cannot be reached: the translator runs all the same (and says so when asked)
    const key = generateKey('start-test-1').public;
    const r = await relonix(NOBODY_UID, ['bootstrap', '--prefix', prefix, '--url', mirror.url, '--upstream', 'http://127.0.0.1:9', '--upstream-key', key]);
    assert.equal(r.code, EXIT.ok, `${r.stdout}\n${r.stderr}`);
  });

  after(async () => {
    if (prefix) await relonix(NOBODY_UID, ['translator', 'stop', '--prefix', prefix]).catch(() => undefined);
    await mirror?.close();
    if (prefix) await removePrefix(prefix);
  });

  test('a command with no translator running starts one on a socket the quick start bound, and the server file names it from the start', async () => {
    await stop();
    const r = await inPrefix('nix-store --version');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'nothing to say');
    const s = serverLine(prefix);
    assert.ok(s && processAlive(s.pid, s.start), 'the server file names a server that runs');
    const argv = (await fs.readFile(`/proc/${s.pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(argv.join(' ').includes('translator serve --prefix'), argv.join(' '));
    assert.equal(argv[argv.indexOf('--listen-fd') + 1], '3', 'it serves on the socket it was handed');
    const id = JSON.parse(await fs.readFile(path.join(prefix, 'var', 'relonix', 'translator', 'config.json'), 'utf8')).id;
    const info = await fetch(`http://127.0.0.1:${s.port}/${id}/nix-cache-info`);
    assert.equal(info.status, 200);
    assert.match(await info.text(), new RegExp(`^StoreDir: ${prefix}/s$`, 'm'));
    await waitUntil('the server wrote its own line', () => serverLine(prefix)?.pid === s.pid);
    assert.deepEqual(serverLine(prefix), s, 'the server wrote the line the quick start had written');
  });

  test('four commands started at once, none running: one server, and every command runs', async () => {
    await stop();
    const rs = await Promise.all([1, 2, 3, 4].map(() => inPrefix('nix-store --version')));
    for (const r of rs) assert.equal(r.code, 0, r.stderr);
    for (const r of rs) assert.doesNotMatch(r.stderr, /relonix/, r.stderr);
    await waitUntil('the servers that found the port taken gave way', async () => (await servers(prefix)).length === 1);
    const s = serverLine(prefix);
    assert.deepEqual(await servers(prefix), [s?.pid], 'the one left is the one the server file names');
  });

  test('the port held by another program: the full start says the translator cannot run, and why', async () => {
    await stop();
    const port = JSON.parse(await fs.readFile(path.join(prefix, 'var', 'relonix', 'translator', 'config.json'), 'utf8')).port as number;
    const other = http.createServer((_, res) => res.writeHead(404).end('not a translator\n'));
    await new Promise<void>((resolve) => other.listen(port, '127.0.0.1', resolve));
    try {
      const r = await inPrefix('nix-store --version');
      assert.equal(r.code, 0, 'the command runs all the same');
      assert.match(
        r.stderr,
        new RegExp(
          `^relonix: error: the translator of ${prefix} cannot run: port ${port} on 127\\.0\\.0\\.1 cannot be had \\(another program holds it\\)`,
          'm',
        ),
      );
      assert.match(r.stderr, /^ {2}fix: stop that program, or run relonix bootstrap again/m);
      assert.deepEqual(await servers(prefix), [], 'no server was left behind');
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  test('a server that fails after the quick start handed it the socket says why to the command asking it', async () => {
    await stop();
    const secret = path.join(prefix, 'var', 'relonix', 'translator', 'key.secret');
    await fs.chmod(secret, 0);
    try {
      // a path nobody has: Nix asks the substituter for it, and waits on the socket while the server loads
      const r = await inPrefix(`nix-store -r ${prefix}/s/${'0'.repeat(32)}-missing`);
      assert.notEqual(r.code, 0, 'the path is not there');
      assert.match(r.stderr, new RegExp(`^relonix: error: the translator of ${prefix} cannot run: the translator's key ${secret} cannot be read`, 'm'));
      assert.match(
        r.stderr,
        /^ {2}fix: run relonix bootstrap again: it makes the key when there is none \(RELONIX_NO_TRANSLATOR=1 runs a command without it\)$/m,
      );
      await waitUntil('the server that failed is gone', async () => (await servers(prefix)).length === 0);
    } finally {
      await fs.chmod(secret, 0o600);
    }
    const again = await inPrefix('nix-store --version');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr, '', 'with the key readable again, the next command starts it quietly');
  });

  test('serve with a --listen-fd that is no descriptor number is refused', async () => {
    const r = await relonix(NOBODY_UID, ['translator', 'serve', '--prefix', prefix, '--listen-fd', '1; x']);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.stderr, /--listen-fd "1; x" is not a descriptor number of 3 or more/);
  });
});
