// The two-host pipeline on one machine: relonix instantiate evaluates a dozen-derivation graph on a
// prefix and builds nothing, the prefix is wiped and the expression deleted, and relonix build of
// the .drv path alone, from the cache alone, restores the Nix, fetches the derivations, builds every
// output and pushes it.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { parseDerivation } from '../../src/store/aterm.ts';
import { bootstrappedPrefix, buildArgv, builtNames, graphName, graphNix, NAMES, readCacheDir, runGroup } from '../helpers/build-rig.ts';
import { EXIT, NOBODY_UID, relonix } from '../helpers/cli.ts';
import { forEachNix } from '../helpers/nixes.ts';
import { removePrefix } from '../helpers/paths.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

forEachNix(
  ({ fixture, test }) => {
    let top: string;
    let prefix: string;
    let cacheDir: string;
    let secret: string;

    before(async () => {
      requireRoot('it switches to uid 4242 and hides the host Nix in a mount namespace');
      requireTool('setpriv', 'util-linux');
      ({ prefix, top, secret } = await bootstrappedPrefix(NOBODY_UID, 'split', fixture));
      cacheDir = path.join(top, 'cache');
      await fs.mkdir(cacheDir);
      await fs.chown(cacheDir, NOBODY_UID, NOBODY_UID);
    });

    after(async () => {
      if (top) await removePrefix(top);
    });

    /** Every derivation below `drv` (itself included) with its output paths, read from the .drv files. */
    async function drvClosure(drv: string, into = new Map<string, string[]>()): Promise<Map<string, string[]>> {
      if (into.has(drv)) return into;
      const d = parseDerivation(await fs.readFile(drv));
      into.set(
        drv,
        d.outputs.map((o) => o.path),
      );
      for (const i of d.inputDrvs) await drvClosure(i.path, into);
      return into;
    }

    const exists = (p: string) =>
      fs.access(p).then(
        () => true,
        () => false,
      );

    test('instantiate publishes the derivations and builds nothing; after a wipe, build of the .drv alone builds and pushes every output', async () => {
      const log = path.join(top, 'split.log');
      await fs.writeFile(log, '');
      await fs.chmod(log, 0o666);
      const expr = path.join(top, 'split.nix');
      await fs.writeFile(expr, graphNix({ log, salt: 'split', sleep: 0 }));
      const cache = `file://${cacheDir}`;

      const inst = await relonix(NOBODY_UID, ['instantiate', '--prefix', prefix, '--cache', cache, '--secret-key', secret, '--', expr]);
      assert.equal(inst.code, EXIT.ok, inst.stderr.slice(-3000));
      const lines = inst.stdout.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, `one .drv path on stdout: ${inst.stdout}`);
      const top1 = lines[0]!;
      assert.match(top1, new RegExp(`^${prefix}/store/[0-9a-z]{32}-g-top\\.drv$`));
      const closure = await drvClosure(top1);
      assert.equal(closure.size, NAMES.length, 'the graph has a dozen derivations');
      const outputs = [...closure.values()].flat();
      for (const o of outputs) assert.equal(await exists(o), false, `nothing was built: ${o} does not exist`);
      assert.deepEqual(builtNames(log), []);
      const before = await readCacheDir(cacheDir);
      assert.deepEqual(before.broken, []);
      for (const d of closure.keys()) assert.ok(before.paths.includes(path.basename(d)), `${path.basename(d)} is in the cache`);
      assert.deepEqual(before.paths.map(graphName).filter(Boolean), [], 'no output is in the cache');
      const manifest = JSON.parse(await fs.readFile(path.join(cacheDir, 'relonix.json'), 'utf8'));
      assert.equal(Object.keys(manifest.nix).length, 1, 'the cache names the Nix, for the building host to restore');

      // the building host: no Nix, no store, no expression; only the .drv path and the cache
      await removePrefix(prefix);
      await fs.rm(expr);
      assert.equal(await exists(top1), false);
      const run = runGroup(NOBODY_UID, buildArgv({ prefix, cache, secret }, ['--json'], ['--no-out-link', '-j', '2', top1]));
      const r = await run.done;
      assert.equal(r.code, EXIT.ok, r.stderr.slice(-3000));
      assert.ok(
        run.events.some((e) => e.event === 'nix' && e.status === 'restored'),
        'the Nix came from the cache',
      );
      assert.deepEqual(builtNames(log).sort(), [...NAMES].sort(), 'every derivation was built, once');
      const done = run.events.find((e) => e.event === 'done')!;
      assert.deepEqual(done.outputs, closure.get(top1));
      const after = await readCacheDir(cacheDir);
      assert.deepEqual(after.broken, []);
      for (const o of outputs) assert.ok(after.paths.includes(path.basename(o)), `${path.basename(o)} was pushed`);
    });

    test('instantiate refuses output that is not a .drv path; relonix options after -- are passed on, and said so', async () => {
      const cache = `file://${cacheDir}`;
      const evalOnly = await relonix(NOBODY_UID, ['instantiate', '--prefix', prefix, '--cache', cache, '--secret-key', secret, '--', '--eval', '-E', '1 + 1']);
      assert.equal(evalOnly.code, EXIT.usage, evalOnly.stderr);
      assert.match(evalOnly.stderr, /nix-instantiate printed "2", which is not a \.drv path in /);
      assert.match(evalOnly.stderr, /not --eval/);

      const expr = path.join(top, 'passed-on.nix');
      await fs.writeFile(expr, graphNix({ log: path.join(top, 'passed-on.log'), salt: 'passed-on', sleep: 0 }));
      const r = await relonix(NOBODY_UID, buildArgv({ prefix, cache, secret }, [], ['--prefix', top, '--no-out-link', expr]));
      assert.match(
        r.stderr,
        /relonix: warning: --prefix comes after nix-build's arguments begin .* so nix-build gets it, not relonix: put relonix's options first/,
      );
      assert.equal((r.stderr.match(/warning: --prefix/g) ?? []).length, 1);
      assert.notEqual(r.code, EXIT.ok, 'nix-build has no --prefix');
    });
  },
  { concurrently: true },
);
