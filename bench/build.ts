// relonix build against plain nix-build of the same graph shape (a dozen sleeping derivations,
// -j 2, a fresh salt each round so everything really builds), in one run, medians of ROUNDS runs
// (RELONIX_BENCH_ROUNDS, default 3); and, over every derivation relonix built, the median time from
// its builder finishing to its narinfo landing on a WebDAV origin on loopback (nginx).
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKey } from '../src/cache/keys.ts';
import { ensureFixture } from '../src/demo/mirror.ts';
import { removeTree } from '../src/util/fs.ts';
import { graphNix, NAMES, outputsOf } from '../test/helpers/build-rig.ts';
import { startNginx } from '../test/helpers/nginx.ts';
import { watchLoad } from './load.ts';
import { median } from './stats.ts';

const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'relonix.js');
const ROUNDS = Number(process.env.RELONIX_BENCH_ROUNDS ?? 3);
const SLEEP = Number(process.env.RELONIX_BENCH_SLEEP ?? 1);

function run(label: string, cmd: string, args: string[]): { s: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { s: (performance.now() - t0) / 1000, stdout: r.stdout };
}

const top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-build-'));
const load = watchLoad();
const nginx = await startNginx(path.join(top, 'nginx'));
try {
  const fx = await ensureFixture();
  const prefix = path.join(top, 'nix');
  const secret = path.join(top, 'bench.secret');
  await fs.writeFile(secret, generateKey('bench-build-1').secret);
  run('bootstrap', process.execPath, [cli, 'bootstrap', '--prefix', prefix, '--url', fx.tarball]);
  const graph = async (salt: string) => {
    const log = path.join(top, `${salt}.log`);
    const expr = path.join(top, `${salt}.nix`);
    await fs.writeFile(expr, graphNix({ log, salt, sleep: SLEEP }));
    return { expr, log };
  };
  const relonixBuild = (expr: string, json: boolean) =>
    run('relonix build', process.execPath, [
      cli,
      'build',
      '--prefix',
      prefix,
      '--cache',
      nginx.url,
      '--secret-key',
      secret,
      ...(json ? ['--json'] : []),
      '--',
      '--no-out-link',
      '-j',
      '2',
      expr,
    ]);
  // the first run publishes the prefix's Nix; that is once per cache, not per build
  const warm = await graph('warm');
  relonixBuild(warm.expr, false);

  const plain: number[] = [];
  const durable: number[] = [];
  const latencies: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const a = await graph(`plain-${i}`);
    plain.push(run('nix-build', path.join(prefix, 'bin', 'nix-build'), ['--no-out-link', '-j', '2', a.expr]).s);
    const b = await graph(`durable-${i}`);
    const r = relonixBuild(b.expr, true);
    durable.push(r.s);
    // builder finished (its last line) → narinfo on the origin (its mtime)
    const plan = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((e) => e.event === 'plan');
    const outs = await outputsOf(plan.drvs as string[]);
    const finished = new Map(
      readFileSync(`${b.log}.finished`, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ') as [string, string]),
    );
    for (const out of outs.values()) {
      const name = /-g-(\w+)$/.exec(out)![1]!;
      const st = await fs.stat(path.join(nginx.root, `${path.basename(out).slice(0, 32)}.narinfo`));
      latencies.push(st.mtimeMs / 1000 - Number(finished.get(name)));
    }
    console.log(`round ${i + 1}: nix-build ${plain[i]!.toFixed(2)} s, relonix build ${durable[i]!.toFixed(2)} s`);
  }
  const ratio = median(durable) / median(plain);
  console.log('');
  console.log(`graph: ${NAMES.length} derivations, builders sleep ${SLEEP} s, -j 2, ${os.availableParallelism()} CPUs, ${ROUNDS} rounds`);
  console.log(`plain nix-build (median)        ${median(plain).toFixed(2)} s`);
  console.log(`relonix build (median)          ${median(durable).toFixed(2)} s   (pushing to ${nginx.url}, WebDAV on loopback)`);
  load.ratio(`relonix build / nix-build:      ${ratio.toFixed(2)}x   (target <= 1.15x)`);
  const sorted = [...latencies].sort((x, y) => x - y);
  console.log(
    `built -> narinfo in the cache:  median ${median(latencies).toFixed(3)} s, max ${sorted[sorted.length - 1]!.toFixed(3)} s over ${latencies.length} derivations   (target < 1 s)`,
  );
} finally {
  await nginx.stop();
  await removeTree(top);
  load.settle();
}
