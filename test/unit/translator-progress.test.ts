// What the translator tells the commands waiting on a burst of translations: nothing for a short
// one; for a long one a line once it has run a while, again every so often, and how it ended.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { Progress } from '../../src/translator/progress.ts';

const MiB = 1024 * 1024;

function setUp() {
  mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000_000;
  const said: string[] = [];
  const p = new Progress(
    (t) => said.push(t),
    { firstMs: 3000, everyMs: 10_000 },
    () => now,
  );
  const pass = (ms: number) => {
    now += ms;
    mock.timers.tick(ms);
  };
  return { p, said, pass };
}

test('a burst that ends before its first line is never said', (t) => {
  t.after(() => mock.timers.reset());
  const { p, said, pass } = setUp();
  const a = p.begin(2 * MiB);
  const b = p.begin(MiB);
  pass(2000);
  a(true);
  pass(900);
  b(true);
  pass(60_000);
  assert.deepEqual(said, []);
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
