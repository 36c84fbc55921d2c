// Times one `relonix patchelf --set-interpreter X --set-rpath Y <files>` call (spawned through
// bin/relonix.js, so start-up counts) against one Debian `patchelf` call with the same arguments on
// an identical copy of the same corpus: every dynamically linked program under /usr/bin and
// /usr/lib/x86_64-linux-gnu (<= 20 MB). Prints both times and relonix/patchelf; the target is <= 0.6.
// Rounds alternate which tool goes first; BENCH_ROUNDS sets how many (default 3).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readElf } from '../src/elf/index.ts';
import { elfFiles, LONG_RPATH } from '../test/helpers/elf.ts';
import { RELONIX, REPO as ROOT } from '../test/helpers/paths.ts';
import { watchLoad } from './load.ts';
import { median } from './stats.ts';

const INTERP = '/tmp/relonix-test-a-very-long-prefix-that-must-grow/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-2.40/lib/ld-linux-x86-64.so.2';
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

// Measure what the package carries: the patchelf bundle, built here from the sources as they are.
{
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/bundle.ts')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('building dist/patchelf.mjs failed');
}

const corpus = elfFiles(['/usr/bin', '/usr/lib/x86_64-linux-gnu']).filter((f) => {
  try {
    return readElf(readFileSync(f), f).interpreter !== undefined;
  } catch {
    return false;
  }
});
const bytes = corpus.reduce((n, f) => n + readFileSync(f).length, 0);
console.log(`corpus: ${corpus.length} programs, ${(bytes / 1048576).toFixed(1)} MiB`);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-bench-elf-'));
function copy(name: string): string[] {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  return corpus.map((f, i) => {
    const dst = path.join(dir, `${i}-${path.basename(f)}`);
    copyFileSync(f, dst);
    return dst;
  });
}

function time(cmd: string, args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  return ms;
}

const ratios: number[] = [];
const load = watchLoad();
try {
  for (let round = 0; round < rounds; round++) {
    const ours = copy(`relonix-${round}`);
    const theirs = copy(`patchelf-${round}`);
    const args = ['--set-interpreter', INTERP, '--set-rpath', LONG_RPATH];
    let tr = 0;
    let tp = 0;
    if (round % 2 === 0) {
      tr = time(process.execPath, [RELONIX, 'patchelf', ...args, ...ours]);
      tp = time('patchelf', [...args, ...theirs]);
    } else {
      tp = time('patchelf', [...args, ...theirs]);
      tr = time(process.execPath, [RELONIX, 'patchelf', ...args, ...ours]);
    }
    // Same results: spot-check that both tools left the same interpreter and RUNPATH.
    for (let i = 0; i < ours.length; i += 25) {
      const a = readElf(readFileSync(ours[i]!));
      const b = readElf(readFileSync(theirs[i]!));
      if (a.interpreter !== b.interpreter || a.runpath !== b.runpath) throw new Error(`results differ for ${corpus[i]}`);
    }
    ratios.push(tr / tp);
    console.log(`round ${round + 1}: relonix ${tr.toFixed(0)} ms, patchelf ${tp.toFixed(0)} ms`);
    load.ratio(`round ${round + 1}: ratio relonix/patchelf ${(tr / tp).toFixed(2)}`);
    rmSync(path.join(tmp, `relonix-${round}`), { recursive: true });
    rmSync(path.join(tmp, `patchelf-${round}`), { recursive: true });
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
load.ratio(`median ratio relonix/patchelf: ${median(ratios).toFixed(2)} (target <= 0.60)`);
load.settle();
