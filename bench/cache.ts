// Restore-from-cache vs bootstrap-from-tarball vs the floor (reading + decompressing the same NARs),
// and relonix publish vs Debian's `nix copy --to file://` of the same closure, in one run.
import { spawnSync } from 'node:child_process';
import { promises as fs, createReadStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureFixture } from '../scripts/make-fixture.ts';
import { generateKey } from '../src/cache/keys.ts';
import { decompress } from '../src/cache/compress.ts';
import { parseNarInfo } from '../src/cache/narinfo.ts';
import { removeTree } from '../src/util/fs.ts';

const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'relonix.js');

function timed(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${label} failed: ${r.stderr}`);
  console.log(`${label.padEnd(44)} ${s.toFixed(2)} s`);
  return s;
}

const fx = await ensureFixture();
const top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-cache-'));
const prefix = path.join(top, 'nix');
const cache = path.join(top, 'cache');
const k = generateKey('bench-1');
await fs.writeFile(path.join(top, 'k.secret'), k.secret);
try {
  const tarball = timed('bootstrap from tarball', process.execPath, [cli, 'bootstrap', '--prefix', prefix, '--url', fx.tarball]);
  const publish = timed('relonix publish (xz) to file://', process.execPath, [cli, 'publish', '--prefix', prefix, '--to', `file://${cache}`, '--secret-key', path.join(top, 'k.secret'), '--quiet']);
  const state = JSON.parse(await fs.readFile(path.join(prefix, 'var/relonix/state.json'), 'utf8'));
  const nixEnv = { ...process.env, NIX_STORE_DIR: path.join(prefix, 'store'), NIX_STATE_DIR: path.join(prefix, 'var/nix'), NIX_LOG_DIR: path.join(prefix, 'var/log/nix'), NIX_CONF_DIR: path.join(prefix, 'etc/nix') };
  const roots = [state.nix, ...(state.cacert ? [state.cacert] : [])];
  const nixCopy = timed('Debian nix copy --to file:// (xz)', '/usr/bin/nix', ['--extra-experimental-features', 'nix-command', 'copy', '--to', `file://${top}/nixcopy`, ...roots], nixEnv);
  // floor: read and decompress every NAR of the cache, writing nothing
  const t0 = performance.now();
  for (const f of (await fs.readdir(cache)).filter((x) => x.endsWith('.narinfo'))) {
    const ni = parseNarInfo(await fs.readFile(path.join(cache, f), 'utf8'));
    for await (const _ of decompress(createReadStream(path.join(cache, ni.url), { highWaterMark: 1 << 20 }), ni.compression)) void _;
  }
  const floor = (performance.now() - t0) / 1000;
  console.log(`${'floor: read + decompress the same NARs'.padEnd(44)} ${floor.toFixed(2)} s`);
  await removeTree(prefix);
  const restore = timed('bootstrap --cache (restore)', process.execPath, [cli, 'bootstrap', '--prefix', prefix, '--cache', `file://${cache}`, '--trusted-key', k.public]);
  await removeTree(prefix);
  await fs.mkdir(prefix, { recursive: true });
  // the same closure uncompressed: the price of xz on the restore side
  const cacheNone = path.join(top, 'cache-none');
  timed('bootstrap from tarball (again, for none)', process.execPath, [cli, 'bootstrap', '--prefix', prefix, '--url', fx.tarball]);
  timed('relonix publish (none) to file://', process.execPath, [cli, 'publish', '--prefix', prefix, '--to', `file://${cacheNone}`, '--secret-key', path.join(top, 'k.secret'), '--compression', 'none', '--quiet']);
  await removeTree(prefix);
  const restoreNone = timed('bootstrap --cache (restore, uncompressed)', process.execPath, [cli, 'bootstrap', '--prefix', prefix, '--cache', `file://${cacheNone}`, '--trusted-key', k.public]);
  console.log(`\ntarball / restore (none): ${(tarball / restoreNone).toFixed(2)}x`);
  console.log(`tarball / restore: ${(tarball / restore).toFixed(2)}x (target >= 2x)`);
  console.log(`restore / floor:   ${(restore / floor).toFixed(2)}x`);
  console.log(`publish / nix copy: ${(publish / nixCopy).toFixed(2)}x`);
} finally {
  await removeTree(top);
}
