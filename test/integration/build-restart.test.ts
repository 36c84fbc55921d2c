// relonix build across the ends a container meets, as a uid with no passwd entry on a host without
// Nix: SIGKILL of the whole process tree mid-build and a wiped prefix (the same command restores the
// Nix, substitutes what reached the cache and rebuilds only the rest; a .drv whose closure is in the
// cache builds by path), SIGTERM to the group (exit within the grace period, every finished output
// pushed), and --keep-going with a failing branch.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { bootstrappedPrefix, buildArgv, builtNames, graphName, graphNix, killTree, NAMES, outputsOf, readCacheDir, runGroup } from '../helpers/build-rig.ts';
import { EXIT, NOBODY_UID, relonix } from '../helpers/cli.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { removePrefix } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

forEachNix(({ fixture, test }) => {
  let top: string;
  let prefix: string;
  let cacheDir: string;
  let secret: string;

  /** Files the unprivileged uid writes to: the cache, the impure logs. */
  async function own(p: string, mode?: number): Promise<void> {
    await fs.chown(p, NOBODY_UID, NOBODY_UID);
    if (mode !== undefined) await fs.chmod(p, mode);
  }

  async function writeGraph(tag: string, o: { fail?: string; sleep?: number } = {}): Promise<{ expr: string; log: string }> {
    const log = path.join(top, `${tag}.log`);
    await fs.writeFile(log, '');
    await fs.writeFile(`${log}.finished`, '');
    // world-writable: the builders run as the build uid
    await fs.chmod(log, 0o666);
    await fs.chmod(`${log}.finished`, 0o666);
    const expr = path.join(top, `${tag}.nix`);
    await fs.writeFile(expr, graphNix({ log, salt: tag, ...o }));
    return { expr, log };
  }

  const buildArgs = (expr: string, extra: string[] = []) =>
    buildArgv({ prefix, cache: `file://${cacheDir}`, secret }, ['--json', ...extra], ['--no-out-link', '-j', '2', expr]);

  /** The graph's names whose outputs have a narinfo in the cache. */
  async function cachedNames(): Promise<string[]> {
    const c = await readCacheDir(cacheDir);
    assert.deepEqual(c.broken, [], 'every narinfo in the cache has its whole NAR');
    return c.paths
      .map(graphName)
      .filter((n): n is string => !!n)
      .sort();
  }

  before(async () => {
    requireRoot('it switches to uid 4242 and hides the host Nix in a mount namespace');
    requireTool('setpriv', 'util-linux');
    ({ prefix, top, secret } = await bootstrappedPrefix(NOBODY_UID, 'build', fixture));
    cacheDir = path.join(top, 'cache');
    await fs.mkdir(cacheDir);
    await own(cacheDir);
  });

  after(async () => {
    if (top) await removePrefix(top);
  });

  test('SIGKILL of the whole tree mid-build, prefix wiped: the same command restores Nix, substitutes what was pushed, rebuilds only the rest', async () => {
    const { expr, log } = await writeGraph('kill', { sleep: 1 });
    // the kill comes once some derivations are in the cache and others are still building
    const run1 = runGroup(NOBODY_UID, buildArgs(expr), (e, run) => {
      const pushed = run.events.filter((x) => x.event === 'pushed').flatMap((x) => x.drvs as string[]).length;
      if (e.event === 'pushed' && pushed >= 4 && Number(e.running) > 0) killTree(run.child.pid!);
    });
    const r1 = await run1.done;
    assert.equal(r1.signal, 'SIGKILL', `relonix was killed mid-build, not finished:\n${r1.stderr.slice(-3000)}`);
    assert.ok(
      run1.events.some((e) => e.event === 'nix' && e.status === 'published'),
      'the first run published the Nix the cache lacked',
    );
    const atKill = await cachedNames();
    const firstBuilt = builtNames(log);
    assert.ok(atKill.length >= 4 && atKill.length < NAMES.length, `some but not all outputs reached the cache: ${atKill.join(' ')}`);
    assert.ok(
      atKill.every((n) => firstBuilt.includes(n)),
      'what is in the cache was built by the first run',
    );

    await removePrefix(prefix);
    await fs.writeFile(log, '');
    const run2 = runGroup(NOBODY_UID, buildArgs(expr));
    const r2 = await run2.done;
    assert.equal(r2.code, EXIT.ok, `${r2.stdout}\n${r2.stderr.slice(-3000)}`);
    assert.ok(
      run2.events.some((e) => e.event === 'nix' && e.status === 'restored'),
      'the wiped prefix got its Nix back from the cache',
    );
    const rebuilt = builtNames(log).sort();
    assert.deepEqual(rebuilt, NAMES.filter((n) => !atKill.includes(n)).sort(), 'only what had not reached the cache was built again');
    assert.deepEqual(await cachedNames(), [...NAMES].sort(), 'everything is in the cache now');
    const done2 = run2.events.find((e) => e.event === 'done')!;
    const outputs = done2.outputs as string[];
    assert.equal(outputs.length, 1);
    assert.match(outputs[0]!, new RegExp(`^${prefix}/store/[0-9a-z]{32}-g-top$`));

    await removePrefix(prefix);
    await fs.writeFile(log, '');
    const run3 = runGroup(NOBODY_UID, buildArgs(expr));
    const r3 = await run3.done;
    assert.equal(r3.code, EXIT.ok, r3.stderr.slice(-3000));
    assert.deepEqual(builtNames(log), [], 'the third run, after another wipe, builds nothing');
    assert.deepEqual(run3.events.find((e) => e.event === 'done')!.outputs, outputs, 'and gives the same output path');
    assert.deepEqual(await cachedNames(), [...NAMES].sort());
    // nothing was built here: nix log finds the log of the top derivation in the cache
    const topDrv = (run2.events.find((e) => e.event === 'plan')!.drvs as string[]).find((d) => d.endsWith('-g-top.drv'))!;
    const nixLog = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix', '--extra-experimental-features', 'nix-command', 'log', topDrv]);
    assert.equal(nixLog.code, 0, nixLog.stderr);
    assert.equal(nixLog.stdout, 'building top\n');
    assert.match(nixLog.stderr, /got build log .* from 'file:\/\//);
    // plain output (no --json): stdout is the output path alone, as nix-build prints it
    const plain = await relonix(
      NOBODY_UID,
      buildArgs(expr).filter((a) => a !== '--json'),
    );
    assert.equal(plain.code, EXIT.ok, plain.stderr);
    assert.equal(plain.stdout, `${outputs[0]}\n`);

    // a .drv instantiated elsewhere: once its closure is in the cache, a wiped prefix builds it by path
    const pub = await relonix(NOBODY_UID, ['publish', '--prefix', prefix, '--to', `file://${cacheDir}`, '--secret-key', secret, '--quiet', topDrv]);
    assert.equal(pub.code, EXIT.ok, pub.stderr);
    await removePrefix(prefix);
    const byDrv = await relonix(NOBODY_UID, buildArgv({ prefix, cache: `file://${cacheDir}`, secret }, [], ['--no-out-link', topDrv]));
    assert.equal(byDrv.code, EXIT.ok, byDrv.stderr.slice(-3000));
    assert.equal(byDrv.stdout, `${outputs[0]}\n`);
    assert.match(byDrv.stderr, new RegExp(`copying path '${topDrv.replace(/[.]/g, '\\.')}' from`), 'the .drv came from the cache');
    assert.deepEqual(builtNames(log), []);
  });

  test('SIGTERM to the whole group: relonix exits within the grace period and every output valid in the store is in the cache', async () => {
    const { expr } = await writeGraph('term', { sleep: 2 });
    const grace = 8;
    let sentAt = 0;
    const run = runGroup(NOBODY_UID, buildArgs(expr, ['--grace', String(grace)]), (e, r) => {
      if (sentAt === 0 && e.event === 'pushed' && Number(e.running) > 0) {
        sentAt = Date.now();
        process.kill(-r.child.pid!, 'SIGTERM');
      }
    });
    // the grace period is relonix's promise to a container runtime: past it, the runtime kills
    const watchdog = setInterval(() => {
      if (sentAt && Date.now() - sentAt > (grace + 2) * 1000) killTree(run.child.pid!);
    }, 200);
    const r = await run.done;
    clearInterval(watchdog);
    const took = Date.now() - sentAt;
    assert.ok(sentAt > 0, 'the signal was sent mid-build');
    assert.ok(took <= grace * 1000, `relonix exited ${took} ms after SIGTERM, past the ${grace} s grace period`);
    assert.equal(r.signal, null, `relonix exited by itself: ${r.stderr.slice(-2000)}`);
    assert.equal(r.code, 128 + 15, 'stopped by SIGTERM (15): 128+15, as a shell reports it');
    assert.ok(run.events.some((e) => e.event === 'stopping' && e.signal === 'SIGTERM'));
    const stopped = run.events.find((e) => e.event === 'interrupted');
    assert.deepEqual([stopped?.signal, stopped?.exitCode], ['SIGTERM', 143], JSON.stringify(run.events.slice(-3)));
    assert.match(String(stopped?.kept), /the builds that were running are lost/);
    assert.match(r.stderr, /^relonix: interrupted by SIGTERM: .*the same command goes on from there$/m);
    const drvs = run.events.find((e) => e.event === 'plan')!.drvs as string[];
    const outs = [...(await outputsOf(drvs)).values()];
    const check = await relonix(NOBODY_UID, ['run', '--prefix', prefix, '--', 'nix-store', '--check-validity', '--print-invalid', ...outs]);
    assert.equal(check.code, 0, check.stderr);
    const invalid = new Set(check.stdout.split('\n').filter(Boolean));
    const valid = outs.filter((p) => !invalid.has(p)).map((p) => path.basename(p));
    assert.ok(valid.length > 0 && valid.length < outs.length, `the stop came mid-build: ${valid.length} of ${outs.length} outputs valid`);
    const cached = new Set((await readCacheDir(cacheDir)).paths);
    assert.deepEqual(
      valid.filter((p) => !cached.has(p)),
      [],
      'every valid output is in the cache',
    );
    assert.deepEqual((await readCacheDir(cacheDir)).broken, []);
  });

  test('--keep-going with one failing branch: the others finish and reach the cache, the exit is non-zero', async () => {
    const { expr, log } = await writeGraph('keep', { fail: 'l4', sleep: 0 });
    const run = runGroup(NOBODY_UID, buildArgs(expr, []).concat('--keep-going'));
    const r = await run.done;
    assert.notEqual(r.code, EXIT.ok, 'a failed derivation fails the build');
    assert.notEqual(r.code, EXIT.network, 'with nix-build status, not a push failure');
    // l4 fails, and with it everything that needs it: m3, m4, u2, u3, top
    const buildable = ['l1', 'l2', 'l3', 'm1', 'm2', 'u1'];
    assert.deepEqual(
      builtNames(log)
        .filter((n) => n !== 'l4')
        .sort(),
      buildable.sort(),
      'every branch that could be built was',
    );
    const cached = new Set((await readCacheDir(cacheDir)).paths.map(graphName));
    for (const n of buildable) assert.ok(cached.has(n), `${n} reached the cache`);
    assert.ok(run.events.some((e) => e.event === 'failed' && String(e.drv).endsWith('-g-l4.drv')));
    // the build log of a pushed derivation, plain text
    const drvs = run.events.find((e) => e.event === 'plan')!.drvs as string[];
    const m1 = drvs.find((d) => d.endsWith('-g-m1.drv'))!;
    assert.equal(await fs.readFile(path.join(cacheDir, 'log', path.basename(m1)), 'utf8'), 'building m1\n');
  });
});
