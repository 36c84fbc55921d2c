// Restore-from-cache against bootstrap-from-tarball and against a floor made of the fastest tools on
// the machine, for each NAR compression; and relonix publish against Debian's `nix copy --to file://`
// of the same closure with the same compression. All in one run, medians of ROUNDS runs
// (RELONIX_BENCH_ROUNDS, default 3); RELONIX_BENCH_COMPRESSIONS=zstd,xz,none picks compressions.
//
// The floor for a compression is the host's own program (zstd, xz) decompressing every NAR file of
// the cache, two at a time, plus `tar -x` of the same store paths: what reading and writing the
// closure costs with nothing checked. A restore also checks every signature and hash and registers
// the paths, so its own stage is compared with the floor, and the whole command with the bootstrap.
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XZ_LEVEL, ZSTD_LEVEL } from '../src/cache/compress.ts';
import { generateKey } from '../src/cache/keys.ts';
import { hostXz, hostZstd } from '../src/codec/host-tools.ts';
import { ensureFixture } from '../src/demo/mirror.ts';
import { removeTree } from '../src/util/fs.ts';
import { benchFixture } from './fixture.ts';
import { watchLoad } from './load.ts';
import { median } from './stats.ts';

const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'relonix.js');
const ROUNDS = Number(process.env.RELONIX_BENCH_ROUNDS ?? 3);
const COMPRESSIONS = (process.env.RELONIX_BENCH_COMPRESSIONS ?? 'zstd,xz,none').split(',') as ('zstd' | 'xz' | 'none')[];

const show = (label: string, s: number, extra = '') => console.log(`${label.padEnd(46)} ${s.toFixed(2)} s${extra}`);

function run(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { s: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${label} failed: ${r.stderr}`);
  return { s: (performance.now() - t0) / 1000, stdout: r.stdout };
}

/** Median of ROUNDS runs, each after `before` (untimed). */
async function rounds(label: string, before: () => Promise<void>, once: () => number | Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await before();
    times.push(await once());
  }
  const m = median(times);
  show(label, m, `  (${times.map((t) => t.toFixed(2)).join(', ')})`);
  return m;
}

/** A bootstrap with --json: its wall time, and the restore stage's own time from the done event. */
function bootstrap(args: string[]): { s: number; restoreS?: number } {
  const r = run('bootstrap', process.execPath, [cli, 'bootstrap', ...args, '--json']);
  const done = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; stageMs?: Record<string, number> })
    .find((e) => e.event === 'done');
  const ms = done?.stageMs?.restore;
  return { s: r.s, restoreS: ms === undefined ? undefined : ms / 1000 };
}

/** Seconds for `argv` run over every file, `jobs` at a time, output to /dev/null. */
async function eachFile(files: string[], argv: string[], jobs: number): Promise<number> {
  const devnull = await fs.open('/dev/null', 'w');
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++]!;
      const code = await new Promise<number | null>((resolve, reject) => {
        const c = spawn(argv[0]!, [...argv.slice(1), f], { stdio: ['ignore', devnull.fd, 'inherit'] });
        c.on('error', reject);
        c.on('close', resolve);
      });
      if (code !== 0) throw new Error(`${argv.join(' ')} ${f} exited with ${code}`);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  const s = (performance.now() - t0) / 1000;
  await devnull.close();
  return s;
}

/** The floor: the host tool decompressing every NAR two at a time, plus `tar -x` of the same paths. */
async function floor(cache: string, c: string, closureTar: string, scratch: string): Promise<number> {
  const nars = (await fs.readdir(path.join(cache, 'nar'))).map((f) => path.join(cache, 'nar', f));
  const tool = c === 'zstd' ? [hostZstd()!, '-d', '-c', '-q'] : c === 'xz' ? [hostXz()!, '-d', '-c', '-q'] : undefined;
  const decompress = tool ? await eachFile(nars, tool, 2) : 0;
  await removeTree(scratch);
  await fs.mkdir(scratch);
  const t0 = performance.now();
  run('tar -x', 'tar', ['-x', '-C', scratch, '-f', closureTar]);
  return decompress + (performance.now() - t0) / 1000;
}

const fx = await ensureFixture({ name: benchFixture() });
console.log(`tarball: ${path.basename(fx.tarball)} (${fx.storePaths.length} store paths)`);
const top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-cache-'));
const prefix = path.join(top, 'nix');
const k = generateKey('bench-1');
const secret = path.join(top, 'k.secret');
await fs.writeFile(secret, k.secret);
const wipe = async () => removeTree(prefix);
const cacheOf = (c: string) => path.join(top, `cache-${c}`);
const load = watchLoad();
try {
  if (!hostXz() || !hostZstd()) throw new Error('the floors use the host tools: install xz-utils and zstd');
  const tarball = await rounds('bootstrap from tarball', wipe, () => bootstrap(['--prefix', prefix, '--url', fx.tarball]).s);

  const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
  const storeDir: string = state.storeDir;
  const roots: string[] = [state.nix, ...(state.cacert ? [state.cacert] : [])];
  // the same store paths as a plain tar, for the floor's `tar -x`
  const closureTar = path.join(top, 'closure.tar');
  run('tar -c', 'tar', ['-c', '-C', storeDir, '-f', closureTar, ...(await fs.readdir(storeDir)).filter((n) => !n.startsWith('.'))]);
  const nixEnv = {
    ...process.env,
    NIX_STORE_DIR: storeDir,
    NIX_STATE_DIR: path.join(prefix, 'var/nix'),
    NIX_LOG_DIR: path.join(prefix, 'var/log/nix'),
    NIX_CONF_DIR: path.join(prefix, 'etc/nix'),
  };
  const publish: Record<string, number> = {};
  const nixCopy: Record<string, number> = {};
  console.log('');
  for (const c of COMPRESSIONS) {
    publish[c] = await rounds(
      `relonix publish (${c}) to file://`,
      () => removeTree(cacheOf(c)),
      () =>
        run('publish', process.execPath, [
          cli,
          'publish',
          '--prefix',
          prefix,
          '--to',
          `file://${cacheOf(c)}`,
          '--secret-key',
          secret,
          '--compression',
          c,
          '--quiet',
        ]).s,
    );
    if (c === 'none') continue;
    // one round, at the level relonix uses: Debian's Nix compresses single-threaded, xz takes a while
    const dest = path.join(top, `nixcopy-${c}`);
    const level = c === 'zstd' ? ZSTD_LEVEL : XZ_LEVEL;
    nixCopy[c] = run(
      'nix copy',
      '/usr/bin/nix',
      ['--extra-experimental-features', 'nix-command', 'copy', '--to', `file://${dest}?compression=${c}&compression-level=${level}`, ...roots],
      nixEnv,
    ).s;
    show(`Debian nix copy (${c} -${level}) to file://`, nixCopy[c]!);
    await removeTree(dest);
  }

  const restore: Record<string, number> = {};
  const restoreStage: Record<string, number> = {};
  const floors: Record<string, number> = {};
  console.log('');
  for (const c of COMPRESSIONS) {
    const scratch = path.join(top, 'floor');
    floors[c] = await rounds(
      `floor: ${c === 'none' ? '' : `${c} -d of every NAR, 2 at once, + `}tar -x`,
      async () => undefined,
      () => floor(cacheOf(c), c, closureTar, scratch),
    );
    await removeTree(scratch);
    const stage: number[] = [];
    restore[c] = await rounds(`bootstrap --cache (restore, ${c})`, wipe, () => {
      const r = bootstrap(['--prefix', prefix, '--cache', `file://${cacheOf(c)}`, '--trusted-key', k.public]);
      if (r.restoreS !== undefined) stage.push(r.restoreS);
      return r.s;
    });
    restoreStage[c] = median(stage);
    show(`  of which the restore stage (${c})`, restoreStage[c]!, `  (${stage.map((t) => t.toFixed(2)).join(', ')})`);
  }

  console.log('');
  for (const c of COMPRESSIONS) {
    const target = c === 'zstd' ? '  (target >= 3x; zstd is what publish picks when the host has zstd)' : '';
    load.ratio(`tarball bootstrap / restore (${c}): ${(tarball / restore[c]!).toFixed(2)}x${target}`);
  }
  for (const c of COMPRESSIONS) {
    const target = c === 'zstd' ? '  (target <= 1.3x)' : '';
    load.ratio(`restore stage / tool floor (${c}): ${(restoreStage[c]! / floors[c]!).toFixed(2)}x${target}`);
  }
  for (const c of Object.keys(nixCopy)) load.ratio(`publish / nix copy (${c}): ${(publish[c]! / nixCopy[c]!).toFixed(2)}x`);
} finally {
  await removeTree(top);
  load.settle();
}
