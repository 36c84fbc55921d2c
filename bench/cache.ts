// Restore-from-cache vs bootstrap-from-tarball vs the floor (reading + decompressing the same NARs,
// as many at once as restore does), for each NAR compression; and relonix publish vs Debian's
// `nix copy --to file://` of the same closure with the same compression. All in one run, medians of
// ROUNDS runs (RELONIX_BENCH_ROUNDS, default 3).
import { spawnSync } from 'node:child_process';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decompress, XZ_LEVEL, ZSTD_LEVEL } from '../src/cache/compress.ts';
import { generateKey } from '../src/cache/keys.ts';
import { parseNarInfo } from '../src/cache/narinfo.ts';
import { hostXz } from '../src/codec/host-tools.ts';
import { ensureFixture } from '../src/demo/mirror.ts';
import { removeTree } from '../src/util/fs.ts';

const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'relonix.js');
const ROUNDS = Number(process.env.RELONIX_BENCH_ROUNDS ?? 3);
const COMPRESSIONS = ['zstd', 'xz', 'none'] as const;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const show = (label: string, s: number, extra = '') => console.log(`${label.padEnd(46)} ${s.toFixed(2)} s${extra}`);

function run(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${label} failed: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
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

/** Reads and decompresses every NAR of a file:// cache, four at a time like restore, writing nothing. */
async function floor(cache: string): Promise<number> {
  const infos = await Promise.all(
    (await fs.readdir(cache)).filter((x) => x.endsWith('.narinfo')).map(async (f) => parseNarInfo(await fs.readFile(path.join(cache, f), 'utf8'))),
  );
  infos.sort((a, b) => (b.fileSize ?? 0) - (a.fileSize ?? 0));
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < infos.length) {
      const ni = infos[next++]!;
      for await (const _ of decompress(createReadStream(path.join(cache, ni.url), { highWaterMark: 1 << 20 }), ni.compression)) void _;
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return (performance.now() - t0) / 1000;
}

const fx = await ensureFixture();
const top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-cache-'));
const prefix = path.join(top, 'nix');
const k = generateKey('bench-1');
const secret = path.join(top, 'k.secret');
await fs.writeFile(secret, k.secret);
const wipe = async () => removeTree(prefix);
const cacheOf = (c: string) => path.join(top, `cache-${c}`);
try {
  if (!hostXz()) throw new Error('the bench compares against xz: install xz-utils');
  const tarball = await rounds('bootstrap from tarball', wipe, () =>
    run('bootstrap', process.execPath, [cli, 'bootstrap', '--prefix', prefix, '--url', fx.tarball]),
  );

  const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
  const roots: string[] = [state.nix, ...(state.cacert ? [state.cacert] : [])];
  const nixEnv = {
    ...process.env,
    NIX_STORE_DIR: path.join(prefix, 'store'),
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
        ]),
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
    );
    show(`Debian nix copy (${c} -${level}) to file://`, nixCopy[c]!);
    await removeTree(dest);
  }

  const restore: Record<string, number> = {};
  const floors: Record<string, number> = {};
  console.log('');
  for (const c of COMPRESSIONS) {
    floors[c] = await rounds(
      `floor: read + decompress (${c})`,
      async () => undefined,
      () => floor(cacheOf(c)),
    );
    restore[c] = await rounds(`bootstrap --cache (restore, ${c})`, wipe, () =>
      run('restore', process.execPath, [cli, 'bootstrap', '--prefix', prefix, '--cache', `file://${cacheOf(c)}`, '--trusted-key', k.public]),
    );
  }

  console.log('');
  for (const c of COMPRESSIONS) {
    const target = c === 'zstd' ? '  (target >= 2x; zstd is what publish picks when the host has zstd)' : '';
    console.log(`tarball / restore (${c}): ${(tarball / restore[c]!).toFixed(2)}x${target}`);
  }
  for (const c of COMPRESSIONS) console.log(`restore / floor (${c}):   ${(restore[c]! / floors[c]!).toFixed(2)}x`);
  for (const c of Object.keys(nixCopy)) console.log(`publish / nix copy (${c}): ${(publish[c]! / nixCopy[c]!).toFixed(2)}x`);
} finally {
  await removeTree(top);
}
