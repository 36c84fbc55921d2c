// Time to a verified Nix from a loopback mirror, against the floor of `xz -dc | tar -x` of the same
// tarball, in the same run. Prints both, the ratio and the per-stage breakdown, and the load around
// the run (the ratio is withheld when the load moved by more than a core).
//   npm run bench:bootstrap [-- --runs N]
import { execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureFixture } from '../src/demo/mirror.ts';
import { serveDirectory } from '../src/net/serve.ts';
import { benchFixture } from './fixture.ts';
import { watchLoad } from './load.ts';
import { median } from './stats.ts';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;

function rmrf(p: string): void {
  execFileSync('sh', ['-c', `chmod -R u+w "${p}" 2>/dev/null; rm -rf "${p}"`]);
}

async function bootstrapOnce(prefix: string, url: string): Promise<{ ms: number; stageMs: Record<string, number> }> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [path.join(REPO, 'bin/relonix.js'), 'bootstrap', '--prefix', prefix, '--url', url, '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const ms = Date.now() - t0;
  if (code !== 0) throw new Error(`bootstrap failed (${code}):\n${out}`);
  const done = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((e) => e.event === 'done');
  return { ms, stageMs: done?.stageMs ?? {} };
}

async function main(): Promise<void> {
  const fx = await ensureFixture({ name: benchFixture(), log: (s) => console.error(`fixture: ${s}`) });
  const server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
  const url = `${server.url.replace(/\/$/, '')}/${path.basename(fx.tarball)}`;
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-'));
  const load = watchLoad();
  const tarMs: number[] = [];
  const bootMs: number[] = [];
  const noopMs: number[] = [];
  const stages: Record<string, number[]> = {};
  try {
    for (let i = 0; i < RUNS; i++) {
      const dest = path.join(work, `tar-${i}`);
      await fs.mkdir(dest);
      const t = Date.now();
      execFileSync('sh', ['-c', `xz -dc "${fx.tarball}" | tar -x -C "${dest}"`]);
      tarMs.push(Date.now() - t);
      rmrf(dest);

      const prefix = path.join(work, `prefix-${i}`);
      const r = await bootstrapOnce(prefix, url);
      bootMs.push(r.ms);
      for (const [k, v] of Object.entries(r.stageMs)) {
        stages[k] ??= [];
        stages[k].push(v);
      }
      noopMs.push((await bootstrapOnce(prefix, url)).ms);
      rmrf(prefix);
    }
  } finally {
    await server.close();
    rmrf(work);
  }
  const tar = median(tarMs);
  const boot = median(bootMs);
  console.log(`tarball: ${path.basename(fx.tarball)} (${fx.storePaths.length} store paths), ${RUNS} runs, medians`);
  console.log(`xz -dc | tar -x            ${(tar / 1000).toFixed(2)} s   (runs: ${tarMs.join(', ')} ms)`);
  console.log(`relonix bootstrap (verified) ${(boot / 1000).toFixed(2)} s   (runs: ${bootMs.join(', ')} ms, node start-up included)`);
  console.log(`re-run on a finished prefix ${(median(noopMs) / 1000).toFixed(2)} s   (no-op; runs: ${noopMs.join(', ')} ms)`);
  console.log('per stage (median ms):');
  for (const [k, v] of Object.entries(stages)) console.log(`  ${k.padEnd(10)} ${median(v)}`);
  load.ratio(`ratio                      ${(boot / tar).toFixed(2)}x   (target ≤ 1.25x)`);
  load.settle();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
