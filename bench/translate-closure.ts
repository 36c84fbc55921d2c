// relonix translate (path mode: every NAR fetched, decompressed, rewritten for another store dir of
// the same length, hashed, recompressed and signed) against Debian's `nix copy` of the same closure
// between two file caches, which does all of that but the rewrite. The closure: the fixture's Nix,
// 48 paths (77 MB of NARs), published once at /nix/store with xz from a chroot store. Both write the
// same compression at the same level (relonix's zstd level; Nix's own default is 3); medians of
// ROUNDS runs (RELONIX_BENCH_ROUNDS, default 3). Target: <= 1.5x.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Compression, ZSTD_LEVEL } from '../src/cache/compress.ts';
import { generateKey, parseSecretKey } from '../src/cache/keys.ts';
import { hostZstd } from '../src/codec/host-tools.ts';
import { ensureFixture } from '../src/demo/mirror.ts';
import { layout } from '../src/prefix/layout.ts';
import { parseRegInfo } from '../src/store/reginfo.ts';
import { translatePaths } from '../src/translate/translate.ts';
import { removeTree } from '../src/util/fs.ts';
import { watchLoad } from './load.ts';
import { median } from './stats.ts';

const ROUNDS = Number(process.env.RELONIX_BENCH_ROUNDS ?? 3);
const NIX_CONFIG = 'experimental-features = nix-command\nbuild-users-group =\nsubstituters =';
const nixEnv = { ...process.env, NIX_CONFIG };

async function timed(rounds: number, before: () => Promise<void>, run: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await before();
    const t0 = performance.now();
    await run();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

/** The fixture's closure, registered in a chroot store at /nix/store and copied to a signed xz cache. */
async function upstreamCache(work: string): Promise<{ dir: string; key: string; paths: string[]; roots: string[] }> {
  const fx = await ensureFixture();
  const unpacked = path.join(work, 'unpacked');
  await fs.mkdir(unpacked);
  execFileSync('tar', ['-xJf', fx.tarball, '-C', unpacked]);
  const [top] = await fs.readdir(unpacked);
  const root = path.join(work, 'root');
  await fs.mkdir(path.join(root, 'nix'), { recursive: true });
  await fs.rename(path.join(unpacked, top!, 'store'), path.join(root, 'nix', 'store'));
  const reginfo = await fs.readFile(path.join(unpacked, top!, '.reginfo'), 'utf8');
  execFileSync('nix-store', ['--store', `local?root=${root}`, '--load-db'], { input: reginfo, env: nixEnv, stdio: ['pipe', 'ignore', 'ignore'] });
  const paths = parseRegInfo(reginfo).map((r) => r.path);
  const k = generateKey('bench-upstream-1');
  await fs.writeFile(path.join(work, 'up.secret'), k.secret);
  const dir = path.join(work, 'up');
  execFileSync('nix', ['copy', '--from', `local?root=${root}`, '--to', `file://${dir}?compression=xz&secret-key=${path.join(work, 'up.secret')}`, ...paths], {
    env: nixEnv,
    stdio: 'ignore',
  });
  return { dir, key: k.public, paths, roots: [fx.nixPath, ...(fx.cacertPath ? [fx.cacertPath] : [])] };
}

const load = watchLoad();
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-translate-'));
try {
  const up = await upstreamCache(work);
  const nars = (await fs.readdir(path.join(up.dir, 'nar'))).length;
  const key = parseSecretKey(generateKey('bench-prefix-1').secret);
  const l = layout(path.join(work, 'prefix'), '/tmp/store');
  console.log(`\nclosure: ${up.paths.length} paths (${nars} xz NARs) from a file:// cache at /nix/store to one at /tmp/store, ${ROUNDS} rounds, medians`);
  const compressions: Compression[] = hostZstd() ? ['none', 'zstd'] : ['none'];
  for (const compression of compressions) {
    const copyDir = path.join(work, `copy-${compression}`);
    const level = compression === 'zstd' ? `&compression-level=${ZSTD_LEVEL}` : '';
    const toDir = path.join(work, `translated-${compression}`);
    const nixCopy = await timed(
      ROUNDS,
      () => removeTree(copyDir),
      async () => {
        execFileSync(
          'nix',
          ['copy', '--no-check-sigs', '--from', `file://${up.dir}`, '--to', `file://${copyDir}?compression=${compression}${level}`, ...up.paths],
          { env: nixEnv, stdio: 'ignore' },
        );
      },
    );
    const translate = await timed(
      ROUNDS,
      () => removeTree(toDir),
      async () => {
        const r = await translatePaths({ layout: l, from: `file://${up.dir}`, fromKeys: [up.key], to: `file://${toDir}`, key, compression }, up.roots);
        if (r.published.length !== up.paths.length) throw new Error(`translated ${r.published.length} of ${up.paths.length} paths`);
      },
    );
    const ratio = translate / nixCopy;
    const what = compression === 'zstd' ? `zstd -${ZSTD_LEVEL}` : compression;
    console.log(`${`nix copy file:// -> file:// (${what})`.padEnd(46)} ${nixCopy.toFixed(2)} s`);
    console.log(`${`relonix translate, path mode (${what})`.padEnd(46)} ${translate.toFixed(2)} s`);
    load.ratio(`${`translate / nix copy (${what})`.padEnd(46)} ${ratio.toFixed(2)}x (target <= 1.5x)${ratio > 1.5 ? '  MISSED' : ''}`);
  }
} finally {
  await removeTree(work);
}
