// Start-up and size of the npm package as users get it: packs this checkout, installs the tarball
// offline into an empty project, then times `relonix --version` from there against `node -e 0` in the
// same run (medians, the commands interleaved so both see the same load). Targets: <= 1.3x node's own
// start-up, and under 2 MB installed.
//   npm run bench:startup [-- --runs N]
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installInProject, packCheckout, treeBytes } from '../test/helpers/package.ts';
import { watchLoad } from './load.ts';
import { median } from './stats.ts';

const runsArg = process.argv.indexOf('--runs');
// 61: on a shared VM, medians of 21 runs moved by a quarter from one run of the bench to the next
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 61;
const MB = 1_000_000;

function timeOnce(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return ms;
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bench-startup-'));
  const load = watchLoad();
  try {
    const packed = packCheckout(work);
    const project = await installInProject(work, packed.tarball);
    const installed = path.join(project, 'node_modules', 'relonix');
    const bin = path.join(project, 'node_modules', '.bin', 'relonix');
    const node = process.execPath;
    const cases: Record<string, string[]> = {
      'node -e 0': [node, '-e', '0'],
      'relonix --version': [node, bin, '--version'],
      'node relonix.mjs --version': [node, path.join(installed, 'dist', 'relonix.mjs'), '--version'],
      'relonix patchelf --version': [node, bin, 'patchelf', '--version'],
      // a real command, loading its own modules: the status of a prefix that does not exist yet
      'relonix status (no prefix)': [node, bin, 'status', '--prefix', path.join(work, 'no-prefix'), '--json'],
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    for (const argv of Object.values(cases)) timeOnce(argv); // warm the page cache first
    for (let i = 0; i < RUNS; i++) for (const [k, argv] of Object.entries(cases)) times[k]!.push(timeOnce(argv));

    const base = median(times['node -e 0']!);
    console.log(`node ${process.version}, ${os.cpus().length} CPUs; ${RUNS} runs each, medians`);
    for (const [k, t] of Object.entries(times)) {
      const target = k === 'relonix --version' ? '   (target <= 1.30x)' : '';
      console.log(`${k.padEnd(28)} ${median(t).toFixed(0).padStart(5)} ms`);
      load.ratio(`${k.padEnd(28)} ${(median(t) / base).toFixed(2)}x node -e 0${target}`);
    }
    const installedBytes = await treeBytes(path.join(project, 'node_modules'));
    const single = (await fs.stat(path.join(installed, 'dist', 'relonix.mjs'))).size;
    const entry = (await fs.stat(path.join(installed, 'dist', 'cli', 'relonix.mjs'))).size;
    console.log(`tarball (what npx downloads)  ${(packed.size / MB).toFixed(2)} MB`);
    console.log(`installed (node_modules)      ${(installedBytes / MB).toFixed(2)} MB   (target < 2 MB)`);
    console.log(`dist/relonix.mjs alone        ${(single / MB).toFixed(2)} MB`);
    console.log(`dist/cli/relonix.mjs (entry)  ${(entry / MB).toFixed(3)} MB`);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
    load.settle();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
