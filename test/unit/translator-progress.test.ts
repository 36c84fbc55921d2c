// What the translator tells the commands waiting on a burst of translations: nothing for a short
// one; for a long one a line once it has run a while, again every so often, and how it ended.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { Progress, type ProgressState } from '../../src/translator/progress.ts';
import { type TranslatorStatus, translatorLines } from '../../src/translator/status.ts';
import { size } from '../../src/util/format.ts';

const MiB = 1024 * 1024;

function setUp() {
  mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000_000;
  const said: string[] = [];
  const kept: (ProgressState | undefined)[] = [];
  const p = new Progress({ say: (t) => said.push(t), keep: (s) => kept.push(s) }, { firstMs: 3000, everyMs: 10_000 }, () => now);
  const pass = (ms: number) => {
    now += ms;
    mock.timers.tick(ms);
  };
  return { p, said, kept, pass };
}

test('a burst that ends before its first line is never said, nor kept', (t) => {
  t.after(() => mock.timers.reset());
  const { p, said, kept, pass } = setUp();
  const a = p.begin(2 * MiB);
  const b = p.begin(MiB);
  pass(2000);
  a(true);
  pass(900);
  b(true);
  pass(60_000);
  assert.deepEqual(said, []);
  assert.deepEqual(kept, []);
});

test('a long burst: a line after firstMs, another every everyMs, counting what came meanwhile, and how it ended', (t) => {
  t.after(() => mock.timers.reset());
  const { p, said, pass } = setUp();
  const a = p.begin(40 * MiB);
  const b = p.begin(10 * MiB);
  pass(1000);
  a(true);
  pass(2000);
  assert.deepEqual(said, ["relonix: translating upstream's binaries for Nix: 1 of 2 paths done (40 MiB of 50 MiB), 3 s so far\n"]);
  const c = p.begin(2 * MiB);
  pass(9999);
  assert.equal(said.length, 1, 'the next line waits everyMs');
  pass(1);
  assert.equal(said[1], "relonix: translating upstream's binaries for Nix: 1 of 3 paths done (40 MiB of 52 MiB), 13 s so far\n");
  b(false);
  c(true);
  c(true); // an end said twice counts once
  assert.equal(said[2], 'relonix: translated 2 paths (42 MiB) in 13 s; 1 could not be (said above), Nix builds it\n');
  pass(60_000);
  assert.equal(said.length, 3, 'nothing more once the burst is over');
});

test('while a burst is said, how far it is is kept at each line and each end, and dropped once it is over', (t) => {
  t.after(() => mock.timers.reset());
  const { p, kept, pass } = setUp();
  const since = new Date(1_000_000).toISOString();
  const a = p.begin(4 * MiB);
  const b = p.begin(MiB);
  pass(3000);
  assert.deepEqual(kept, [{ since, asked: 2, ended: 0, failed: 0, bytes: 5 * MiB, endedBytes: 0 }]);
  a(false);
  assert.deepEqual(kept[1], { since, asked: 2, ended: 1, failed: 1, bytes: 5 * MiB, endedBytes: 4 * MiB });
  b(true);
  assert.deepEqual(kept.slice(2), [undefined]);
});

test('the next burst starts its own count and clock', (t) => {
  t.after(() => mock.timers.reset());
  const { p, said, pass } = setUp();
  p.begin(MiB)(true);
  pass(5000);
  const a = p.begin(3 * MiB);
  pass(3000);
  a(true);
  assert.deepEqual(said, [
    "relonix: translating upstream's binaries for Nix: 0 of 1 path done (0.0 MiB of 3.0 MiB), 3 s so far\n",
    'relonix: translated 1 path (3.0 MiB) in 3 s\n',
  ]);
});

test('relonix status says how far the translations running now are, counting the seconds since they started', () => {
  const t: TranslatorStatus = {
    enabled: true,
    upstreams: ['https://cache.nixos.org'],
    url: 'http://127.0.0.1:12000/abc',
    running: { pid: 42, port: 12000 },
    now: { since: new Date(1_000_000).toISOString(), asked: 45, ended: 12, failed: 1, bytes: 156 * MiB, endedBytes: 48 * MiB },
    translated: { paths: 11, bytes: 40 * MiB },
    refused: [],
    untranslatable: {},
    unreachable: {},
    compressed: {},
  };
  const lines = translatorLines(t, size, 1_000_000 + 14_400);
  assert.equal(lines[2], '  translating now: 12 of 45 paths done, 1 of them not translated (48 MiB of 156 MiB), for 14 s');
  assert.equal(lines[3], '  11 paths translated and kept (40 MiB of NARs)');
  const { now: _, ...idle } = t;
  assert.ok(!translatorLines(idle, size).some((l) => l.includes('translating now')), 'nothing when none run');
});
