// relonix bundle against plain tar and gzip, in one run on one machine. The closure: the fixture's
// Nix (48 store paths) in a prefix bootstrapped with a 10-byte store dir; the entry its nix-store,
// run as `nix-store --version`. Measured:
//   size        the bundle file against `tar -czf` of the same store paths           target <= 1.05x
//   first run   ./bundle --version with no run dir (verify, unpack, rename, exec) against
//               `tar -xzf` of that tarball into a fresh dir; the entry's own run time is
//               taken off (net) as well as shown in (raw)                             target <= 1.3x
//   second run  ./bundle --version against the entry run directly from the run dir   target <= 20 ms more
// Medians of ROUNDS first runs (RELONIX_BENCH_ROUNDS, default 5) and of 8x as many second runs, and
// the CPU time the first run and tar used (load moves it less than wall time). The ratios are
// withheld when other work came or went during the run (bench/load.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureFixture } from '../src/demo/mirror.ts';
import { removeTree } from '../src/util/fs.ts';
import { HZ, ownTicks, watchLoad } from './load.ts';
import { median } from './stats.ts';

const ROUNDS = Number(process.env.RELONIX_BENCH_ROUNDS ?? 5);
const RELONIX = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'relonix.js');

/** CPU seconds (user + system) of the children this process has waited for. */
const childCpu = () => ownTicks().children / HZ;

interface Timing {
  ms: number;
  /** CPU seconds of the command and everything it ran: load on the machine moves it less than wall time */
  cpu: number;
}

/** How long a command takes, start to exit, and the CPU it used; its stdout is checked against `expect`. */
function timed(cmd: string, args: string[], expect?: string): Timing {
  const cpu0 = childCpu();
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  if (expect !== undefined && r.stdout !== expect) throw new Error(`${cmd} printed ${JSON.stringify(r.stdout)}, not ${JSON.stringify(expect)}`);
  return { ms, cpu: childCpu() - cpu0 };
}

function relonix(args: string[]): string {
  return execFileSync(process.execPath, [RELONIX, ...args], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'inherit'] });
}

async function freshStoreDir(): Promise<string> {
  for (let i = 0; ; i++) {
    const d = `/tmp/bn${String(i).padStart(3, '0')}`;
    if (!(await fs.stat(d).catch(() => undefined))) return d;
  }
}

const loadWatch = watchLoad();
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-bundle-'));
const storeDir = await freshStoreDir();
let runDir = '';
try {
  const fx = await ensureFixture();
  const prefix = path.join(work, 'nix');
  relonix(['bootstrap', '--prefix', prefix, '--store-dir', storeDir, '--url', fx.tarball]);
  const nix = JSON.parse(await fs.readFile(path.join(prefix, 'var', 'relonix', 'state.json'), 'utf8')).nix as string;
  const bundle = path.join(work, 'nix.run');
  const t0 = performance.now();
  const made = relonix(['bundle', '--prefix', prefix, `${nix}/bin/nix-store`, '-o', bundle]);
  const makeMs = performance.now() - t0;
  runDir = /^run dir: (\S+)/m.exec(made)![1]!;
  const entry = path.join(runDir, /entry (\S+)/.exec(made)![1]!);
  const paths = /: (\d+) store paths/.exec(made)![1]!;

  const ref = path.join(work, 'ref.tar.gz');
  const closure = execFileSync(process.execPath, [RELONIX, 'run', '--prefix', prefix, '--', 'nix-store', '-qR', nix], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((p) => path.basename(p));
  execFileSync('tar', ['-czf', ref, '-C', storeDir, ...closure]);
  const [bundleBytes, refBytes] = [(await fs.stat(bundle)).size, (await fs.stat(ref)).size];

  const dropRunDir = () => execFileSync('sh', ['-c', `chmod -R u+w ${runDir} 2>/dev/null; rm -rf ${runDir}`]);
  dropRunDir();
  const version = spawnSync(bundle, ['--version'], { encoding: 'utf8' }).stdout;
  if (!/^nix-store \(Nix\) /.test(version)) throw new Error(`the bundle printed ${version}`);
  // each round times the entry alone, a first run and tar -xzf back to back, so load that comes and goes hits all three
  const rounds: { first: Timing; entry: Timing; tar: Timing }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    dropRunDir();
    const first = timed(bundle, ['--version'], version);
    const entryAlone = timed(entry, ['--version'], version);
    const dir = path.join(work, `x${i}`);
    await fs.mkdir(dir);
    rounds.push({ first, entry: entryAlone, tar: timed('tar', ['-xzf', ref, '-C', dir]) });
    await removeTree(dir);
  }
  const seconds: Timing[] = [];
  const directs: Timing[] = [];
  for (let i = 0; i < ROUNDS * 8; i++) {
    seconds.push(timed(bundle, ['--version'], version));
    directs.push(timed(entry, ['--version'], version));
  }
  const cpuMs = (ts: Timing[]) => (ts.reduce((n, t) => n + t.cpu, 0) / ts.length) * 1000;
  const med = (f: (r: (typeof rounds)[number]) => number) => median(rounds.map(f));
  const [first, tar, alone] = [med((r) => r.first.ms), med((r) => r.tar.ms), med((r) => r.entry.ms)];
  const [second, direct] = [median(seconds.map((t) => t.ms)), median(directs.map((t) => t.ms))];
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  console.log(`closure: the fixture's Nix, ${paths} store paths; bundled in ${(makeMs / 1000).toFixed(1)} s`);
  loadWatch.ratio(`size        bundle ${mb(bundleBytes)}, tar -czf ${mb(refBytes)}: ${(bundleBytes / refBytes).toFixed(3)}x (target <= 1.05x)`);
  loadWatch.ratio(
    `first run   ${first.toFixed(0)} ms (the entry's own run: ${alone.toFixed(0)} ms), tar -xzf ${tar.toFixed(0)} ms; ` +
      `ratio per round, median of ${ROUNDS}: ${med((r) => (r.first.ms - r.entry.ms) / r.tar.ms).toFixed(2)}x without the entry's run, ` +
      `${med((r) => r.first.ms / r.tar.ms).toFixed(2)}x with it; CPU ${med((r) => (r.first.cpu - r.entry.cpu) / r.tar.cpu).toFixed(2)}x (target <= 1.3x)`,
  );
  loadWatch.ratio(
    `second run  ${second.toFixed(1)} ms, the entry alone ${direct.toFixed(1)} ms: ${(second - direct).toFixed(1)} ms more (target <= 20 ms; medians of ${ROUNDS * 8}); ` +
      `CPU ${(cpuMs(seconds) - cpuMs(directs)).toFixed(1)} ms more (means)`,
  );
  loadWatch.settle();
} finally {
  if (runDir) execFileSync('sh', ['-c', `chmod -R u+w ${runDir} 2>/dev/null; rm -rf ${runDir}`]);
  await removeTree(work);
  await removeTree(storeDir);
}
