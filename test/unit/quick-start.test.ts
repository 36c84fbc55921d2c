// The translator's quick start (start.mjs) is text relonix writes at bootstrap and node runs before,
// and without, relonix's own code. Here its code runs against stand-ins for node's modules, so what
// it does is seen without a process: the argv and descriptors the server gets, the server file, and
// that a prefix with quotes, $( ), a newline or U+2028 in it stays one string.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layout } from '../../src/prefix/layout.ts';
import { translatorFiles } from '../../src/translator/config.ts';
import { quickStartScript } from '../../src/translator/setup.ts';

interface Run {
  exit?: number;
  spawned?: { cmd: string; argv: string[]; opts: { cwd: string; detached: boolean; stdio: unknown[] } };
  written: Map<string, string>;
  renamed: [string, string][];
  listened?: unknown;
}

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Runs the script's code with node's modules replaced: `config` is what it reads, `bind` whether the port can be had. */
function runQuickStart(script: string, o: { config: unknown; bind: boolean; entryExists?: boolean }): Run {
  const run: Run = { written: new Map(), renamed: [] };
  const body = script
    .split('\n')
    .filter((line) => !line.startsWith('import '))
    .join('\n');
  assert.equal(script.split('\n').filter((l) => l.startsWith('import ')).length, 3, 'three imports, all of node builtins');
  assert.ok(
    script
      .split('\n')
      .filter((l) => l.startsWith('import '))
      .every((l) => / from 'node:[a-z_]+';$/.test(l)),
  );
  const fakeProcess = {
    execPath: '/usr/bin/node',
    pid: 77,
    exit: (code: number) => {
      throw new Exit(code);
    },
  };
  const fs = {
    existsSync: () => o.entryExists ?? true,
    openSync: () => 9,
    readFileSync: (file: string) => {
      if (file.endsWith('config.json')) return JSON.stringify(o.config);
      if (file === '/proc/4321/stat') return '4321 (node) S 1 4321 4321 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 998877 0 0';
      throw new Error(`no ${file}`);
    },
    writeFileSync: (file: string, text: string) => run.written.set(file, text),
    renameSync: (from: string, to: string) => run.renamed.push([from, to]),
    rmSync: () => undefined,
  };
  const handlers = new Map<string, (...a: unknown[]) => void>();
  const child = { pid: 4321, once: (ev: string, fn: (...a: unknown[]) => void) => handlers.set(ev, fn) };
  const spawn = (cmd: string, argv: string[], opts: NonNullable<Run['spawned']>['opts']) => {
    run.spawned = { cmd, argv, opts };
    return child;
  };
  const net = {
    createServer: () => {
      let onError: (() => void) | undefined;
      return {
        _handle: { fd: 21 },
        once: (_: string, fn: () => void) => {
          onError = fn;
        },
        listen: (opts: unknown, cb: () => void) => {
          run.listened = opts;
          if (o.bind) cb();
          else onError?.();
        },
      };
    },
  };
  try {
    new Function('spawn', 'existsSync', 'openSync', 'readFileSync', 'renameSync', 'rmSync', 'writeFileSync', 'net', 'process', body)(
      spawn,
      fs.existsSync,
      fs.openSync,
      fs.readFileSync,
      fs.renameSync,
      fs.rmSync,
      fs.writeFileSync,
      net,
      fakeProcess,
    );
    handlers.get('spawn')?.();
  } catch (e) {
    if (!(e instanceof Exit)) throw e;
    run.exit = e.code;
  }
  return run;
}

const CONFIG = { port: 23456, entry: '/p/var/relonix/translator/relonix.mjs' };

test('the quick start binds the port on loopback, starts the server on the socket it hands down, and writes the server file', () => {
  const l = layout('/tmp/q/nix');
  const f = translatorFiles(l);
  const run = runQuickStart(quickStartScript(l, f), { config: CONFIG, bind: true });
  assert.equal(run.exit, 0);
  assert.deepEqual(run.listened, { port: 23456, host: '127.0.0.1', exclusive: true });
  assert.deepEqual(run.spawned, {
    cmd: '/usr/bin/node',
    argv: [CONFIG.entry, 'translator', 'serve', '--prefix', l.prefix, '--listen-fd', '3'],
    opts: { cwd: '/', detached: true, stdio: ['ignore', 9, 9, 21] },
  });
  assert.deepEqual(run.renamed, [[`${f.dir}/.relonix-server.77.tmp`, f.server]]);
  assert.equal(run.written.get(`${f.dir}/.relonix-server.77.tmp`), '4321 998877 23456\n', 'pid, start time (field 22 of its stat), port');
});

test('the quick start gives way (exits non-zero, so the wrappers run the full start) when the port is taken or the config is not as written', () => {
  const l = layout('/tmp/q/nix');
  const script = quickStartScript(l, translatorFiles(l));
  for (const [why, o] of [
    ['the port is taken', { config: CONFIG, bind: false }],
    ['no port in the config', { config: { entry: CONFIG.entry }, bind: true }],
    ['a port that is no number', { config: { ...CONFIG, port: '23456; x' }, bind: true }],
    ['its relonix is gone', { config: CONFIG, bind: true, entryExists: false }],
  ] as const) {
    const run = runQuickStart(script, o);
    assert.equal(run.exit, 3, why);
    assert.equal(run.spawned, undefined, why);
    assert.equal(run.renamed.length, 0, why);
  }
});

test('a prefix with quotes, $( ), backslashes, a newline or U+2028 reaches the server as the one string it is', () => {
  for (const prefix of ['/tmp/$(touch pwned)/nix', '/tmp/it\'s "here"\\/nix', '/tmp/a\nb/nix', '/tmp/a\u2028b`${x}`/nix']) {
    const l = layout(prefix);
    const f = translatorFiles(l);
    const script = quickStartScript(l, f);
    assert.equal(
      script.split('\n')[0],
      quickStartScript(layout('/tmp/q/nix'), translatorFiles(layout('/tmp/q/nix'))).split('\n')[0],
      'the comment names no path',
    );
    const run = runQuickStart(script, { config: CONFIG, bind: true });
    assert.equal(run.exit, 0, prefix);
    assert.deepEqual(run.spawned?.argv.slice(3, 5), ['--prefix', l.prefix]);
    assert.deepEqual(run.renamed[0]?.[1], f.server);
  }
});
