// Throughput of the NAR rewriter on a synthetic 100 MB NAR (binaries, text files naming store paths,
// many small files), in path mode (store dir only, streamed) and derivation mode (500 hash parts
// too, the tree held back in a spool), against the floor: sha256 over the same chunks, which any
// pass over a NAR pays. Medians of ROUNDS runs (RELONIX_BENCH_ROUNDS, default 3). Then the whole
// command on a real closure against nix copy (translate-closure.ts).
import { createHash, randomBytes } from 'node:crypto';
import { toNixBase32 } from '../src/store/nixbase32.ts';
import { rewriteNar } from '../src/translate/rewrite.ts';
import { nar, type Tree } from '../test/helpers/nar-model.ts';
import { watchLoad } from './load.ts';
import { median } from './stats.ts';

const ROUNDS = Number(process.env.RELONIX_BENCH_ROUNDS ?? 3);
const CHUNK = 1 << 16;
const hash = () => toNixBase32(randomBytes(20));
const hashes = Array.from({ length: 500 }, hash);
const ref = (i: number) => `/nix/store/${hashes[i % hashes.length]}-pkg-${i % 37}/lib/libfoo.so.1`;

function binary(size: number, seed: number): Buffer {
  const b = randomBytes(size);
  // a binary's strings: a store path every 64 KiB, and runs of identifiers
  for (let o = 0, i = seed; o + 200 < size; o += 1 << 16, i++) b.write(`${ref(i)}\0__libc_start_main_version_GLIBC_2_34\0`, o + 7, 'latin1');
  return b;
}

function text(size: number, seed: number): Buffer {
  let s = '';
  for (let i = seed; s.length < size; i++) s += `export PATH="${ref(i)}/bin:$PATH" # line ${i} of a wrapper script\n`;
  return Buffer.from(s.slice(0, size), 'latin1');
}

function tree(): Tree {
  const bin: Record<string, Tree> = {};
  for (let i = 0; i < 4; i++) bin[`prog${i}`] = { type: 'regular', contents: binary(12_000_000, i), executable: true };
  const share: Record<string, Tree> = {};
  for (let i = 0; i < 1000; i++) share[`doc${i}.txt`] = { type: 'regular', contents: text(30_000, i) };
  const small: Record<string, Tree> = {};
  for (let i = 0; i < 10_000; i++) small[`f${i}`] = i % 3 ? { type: 'regular', contents: text(3000, i) } : { type: 'symlink', target: ref(i) };
  return {
    type: 'directory',
    entries: { bin: { type: 'directory', entries: bin }, share: { type: 'directory', entries: share }, small: { type: 'directory', entries: small } },
  };
}

function* chunks(b: Buffer): Generator<Buffer> {
  for (let o = 0; o < b.length; o += CHUNK) yield b.subarray(o, o + CHUNK);
}

async function time(run: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await run();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

const load = watchLoad();
const input = nar(tree());
const mb = input.length / 1e6;
const floor = await time(async () => {
  const h = createHash('sha256');
  for (const c of chunks(input)) h.update(c);
  h.digest();
});
const modes = {
  'path mode (store dir only)': new Map<string, string>(),
  'derivation mode (+500 hash parts)': new Map(hashes.map((h) => [h, hash()])),
};
console.log(`synthetic NAR: ${mb.toFixed(1)} MB, ${ROUNDS} rounds, medians`);
console.log(`${'sha256 over the chunks (floor)'.padEnd(40)} ${(mb / floor).toFixed(0).padStart(5)} MB/s`);
for (const [label, map] of Object.entries(modes)) {
  let spilled = 0;
  const s = await time(async () => {
    const r = rewriteNar(chunks(input), { fromStoreDir: '/nix/store', toStoreDir: '/tmp/store', hashes: map });
    for await (const c of r.chunks) void c;
    spilled = r.summary.spilled;
  });
  console.log(`${label.padEnd(40)} ${(mb / s).toFixed(0).padStart(5)} MB/s${spilled ? `, ${(spilled / 1e6).toFixed(0)} MB spooled to disk` : ''}`);
  load.ratio(`${label.padEnd(40)} ${(floor / s).toFixed(2)}x the floor`);
}

await import('./translate-closure.ts');
load.settle();
