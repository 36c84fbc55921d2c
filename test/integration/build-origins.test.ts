// relonix build against HTTP origins: nginx's WebDAV module, the same behind an origin that answers
// 503 to every third PUT (every output still arrives), and an origin that is down (the build still
// completes, exit 6, and the next run pushes the queue).

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import {
  bootstrappedPrefix,
  buildArgv,
  builtNames,
  freePort,
  graphName,
  graphNix,
  NAMES,
  outputsOf,
  readCacheDir,
  runGroup,
  startOrigin,
} from '../helpers/build-rig.ts';
import { EXIT, relonix } from '../helpers/cli.ts';
import { type Nginx, startNginx } from '../helpers/nginx.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { removePrefix } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

forEachNix(({ fixture, test }) => {
  let nginx: Nginx;
  let top: string;
  let prefix: string;
  let secret: string;

  async function writeGraph(tag: string): Promise<{ expr: string; log: string }> {
    const log = path.join(top, `${tag}.log`);
    const expr = path.join(top, `${tag}.nix`);
    await fs.writeFile(expr, graphNix({ log, salt: tag, sleep: 0 }));
    return { expr, log };
  }

  const buildArgs = (cache: string, expr: string) => buildArgv({ prefix, cache, secret }, ['--json'], ['--no-out-link', '-j', '2', expr]);

  /** The graph's names with a narinfo under the origin's root; every narinfo there has its whole NAR. */
  async function arrived(): Promise<string[]> {
    const c = await readCacheDir(nginx.root);
    assert.deepEqual(c.broken, [], 'every narinfo on the origin has its whole NAR');
    return c.paths.map(graphName).filter((n): n is string => !!n);
  }

  before(async () => {
    requireRoot('it hides the host Nix in a mount namespace');
    requireTool('setpriv', 'util-linux');
    ({ prefix, top, secret } = await bootstrappedPrefix(undefined, 'origin', fixture));
    nginx = await startNginx(path.join(top, 'nginx'));
  });

  after(async () => {
    await nginx?.stop();
    if (top) await removePrefix(top);
  });

  test('nginx WebDAV: every output, its closure and the Nix reach the origin', async () => {
    const { expr, log } = await writeGraph('dav');
    const run = runGroup(undefined, buildArgs(nginx.url, expr));
    const r = await run.done;
    assert.equal(r.code, EXIT.ok, r.stderr.slice(-3000));
    assert.deepEqual(builtNames(log).sort(), [...NAMES].sort());
    const names = await arrived();
    for (const n of NAMES) assert.ok(names.includes(n), `${n} is on the origin`);
    const manifest = JSON.parse(await fs.readFile(path.join(nginx.root, 'relonix.json'), 'utf8'));
    assert.ok(Object.values(manifest.nix).length === 1, 'the manifest names the Nix');
  });

  test('an origin that answers 503 to every third PUT: the build completes and every output arrives', async () => {
    const origin = await startOrigin(nginx.port, { refuseEvery: 3 });
    try {
      const { expr } = await writeGraph('flaky');
      const run = runGroup(undefined, buildArgs(origin.url, expr));
      const r = await run.done;
      assert.equal(r.code, EXIT.ok, r.stderr.slice(-3000));
      assert.ok(origin.refused >= 4, `the origin refused ${origin.refused} of ${origin.puts} PUTs`);
      await arrived();
      const drvs = run.events.find((e) => e.event === 'plan')!.drvs as string[];
      assert.equal(drvs.length, NAMES.length);
      const there = new Set((await readCacheDir(nginx.root)).paths);
      for (const [d, out] of await outputsOf(drvs)) assert.ok(there.has(path.basename(out)), `the output of ${path.basename(d)} arrived`);
    } finally {
      await origin.close();
    }
  });

  test('the origin down: the build completes, exit 6 with the queue kept, and the next run pushes the queue first', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const { expr, log } = await writeGraph('down');
    const run1 = runGroup(undefined, buildArgs(url, expr));
    const r1 = await run1.done;
    assert.equal(r1.code, EXIT.network, `${r1.stdout.slice(-2000)}\n${r1.stderr.slice(-3000)}`);
    assert.deepEqual(builtNames(log).sort(), [...NAMES].sort(), 'the build did not wait for the cache');
    assert.match(r1.stderr, /12 built derivations are not in .* yet .*they stay queued, and the next relonix build pushes them first/);
    const done1 = run1.events.find((e) => e.event === 'done')!;
    assert.equal((done1.outputs as string[]).length, 1, 'the output path is still printed');
    const status = await relonix(undefined, ['status', '--prefix', prefix, '--json']);
    const queue = JSON.parse(status.stdout).buildQueue.pending as string[];
    assert.equal(queue.length, NAMES.length, 'relonix status lists the queue');
    const plain = await relonix(undefined, ['status', '--prefix', prefix]);
    assert.match(plain.stdout, /build queue 12 built but not yet in the cache/);

    // the origin is back; the next run builds something else, and pushes the queue first
    const origin = await startOrigin(nginx.port, { port });
    try {
      const next = await writeGraph('down-next');
      const run2 = runGroup(undefined, buildArgs(url, next.expr));
      const r2 = await run2.done;
      assert.equal(r2.code, EXIT.ok, r2.stderr.slice(-3000));
      const plan = run2.events.findIndex((e) => e.event === 'plan');
      const before = run2.events
        .slice(0, plan)
        .filter((e) => e.event === 'pushed')
        .flatMap((e) => e.drvs as string[]);
      assert.deepEqual(before.sort(), [...queue].sort(), 'the queue went up before nix-build started');
      const there = new Set((await readCacheDir(nginx.root)).paths);
      const drvs = [...queue, ...(run2.events[plan]!.drvs as string[])];
      for (const [d, out] of await outputsOf(drvs)) assert.ok(there.has(path.basename(out)), `the output of ${path.basename(d)} is on the origin now`);
      await arrived();
      const after = JSON.parse((await relonix(undefined, ['status', '--prefix', prefix, '--json'])).stdout);
      assert.deepEqual(after.buildQueue.pending, []);
    } finally {
      await origin.close();
    }
  });
});
