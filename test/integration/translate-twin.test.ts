// Twins against Nix itself: one generated expression of some 300 derivations, evaluated by
// nix-instantiate at two store dirs. The twins computed from the first evaluation must be, path for
// path and byte for byte, what Nix wrote at the second. Then real builds: a NAR Nix dumped at one
// store dir, rewritten, must be the NAR of the same build at the other.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseDerivation } from '../../src/store/aterm.ts';
import { toNixBase32 } from '../../src/store/nixbase32.ts';
import { rewriteNar } from '../../src/translate/rewrite.ts';
import { computeTwins } from '../../src/translate/twin.ts';
import { removeTree } from '../../src/util/fs.ts';
import { collect } from '../helpers/nar-model.ts';
import { instantiate, loadClosure, nix, type TempStore, tempStore } from '../helpers/nix-store.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

requireTool('nix-instantiate', 'nix-bin');
requireRoot('nix-instantiate writes to stores of its own only as root');

const N = 300;

/** mulberry32: the same expression every run, so a failure can be read again */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Kinds {
  fixedFlat: number;
  fixedRecursive: number;
  multiOutput: number;
  inputAddressed: number;
  /** `__structuredAttrs`: every attribute in one JSON string, `__json` */
  structured: number;
}

/** A digest of `algo` over `seed` in one of the three spellings an expression may use. */
function outputHash(algo: string, seed: string, spelling: number): { attrs: string } {
  const d = createHash(algo).update(seed).digest();
  if (spelling === 0) return { attrs: `outputHashAlgo = "${algo}"; outputHash = "${d.toString('hex')}";` };
  if (spelling === 1) return { attrs: `outputHashAlgo = "${algo}"; outputHash = "${toNixBase32(d)}";` };
  return { attrs: `outputHash = "${algo}-${d.toString('base64')}";` };
}

function expression(rand: () => number): { nix: string; kinds: Kinds } {
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
  const lines = ['let', '  sys = builtins.currentSystem;'];
  for (let k = 0; k < 20; k++) {
    const refs = [`\${./src/f${k % 5}.txt}`, ...(k ? [`\${t${k - 1}}`] : []), ...(k % 4 === 3 ? ['${./src/tree}'] : [])];
    lines.push(`  t${k} = builtins.toFile "t${k}.txt" "text ${k}: ${refs.join(' and ')}\\n";`);
  }
  const kinds: Kinds = { fixedFlat: 0, fixedRecursive: 0, multiOutput: 0, inputAddressed: 0, structured: 0 };
  const outputsOf: string[][] = [];
  for (let i = 0; i < N; i++) {
    const attrs: string[] = [`name = "d${i}${i % 9 === 4 ? '-1.2+x' : ''}";`, 'system = sys;'];
    attrs.push(i % 6 === 5 ? 'builder = ./src/builder.sh;' : 'builder = "/bin/sh";');
    attrs.push(i % 5 === 0 ? 'args = [ "-c" "a\\"b\\\\c\\nd\\re\\tf $out" ];' : `args = [ "-c" "echo ${i} > $out" ];`);
    // chains (the one before), diamonds (two that share inputs) and long jumps back
    const deps = new Set<number>();
    if (i > 0 && rand() < 0.7) deps.add(i - 1);
    for (let n = Math.floor(rand() * 3); n > 0 && i > 1; n--) deps.add(Math.floor(rand() * i));
    for (const j of deps) {
      const out = pick(outputsOf[j]!);
      attrs.push(`dep${j} = ${out === 'out' ? `d${j}` : `"\${d${j}.${out}}/lib"`};`);
    }
    if (rand() < 0.3) attrs.push(`src = ./src/f${Math.floor(rand() * 5)}.txt;`);
    if (i % 11 === 3) attrs.push('tree = ./src/tree;');
    if (rand() < 0.25) attrs.push(`note = t${Math.floor(rand() * 20)};`);
    if (i % 7 === 2) attrs.push('storeDir = builtins.storeDir;');
    if (i % 13 === 8 && i > 0) attrs.push(`drvOnly = builtins.unsafeDiscardOutputDependency d${i - 1}.drvPath;`);
    if (i % 17 === 6) attrs.push('self = placeholder "out";');
    let outputs = ['out'];
    if (i % 10 === 0) {
      kinds.fixedFlat++;
      attrs.push('outputHashMode = "flat";', outputHash(['sha256', 'sha1', 'sha512'][(i / 10) % 3]!, `flat ${i}`, i % 3).attrs);
    } else if (i % 10 === 1) {
      kinds.fixedRecursive++;
      attrs.push('outputHashMode = "recursive";', outputHash(i % 20 === 1 ? 'sha256' : 'sha1', `rec ${i}`, i % 3).attrs);
    } else if (i % 10 === 2 || i % 10 === 7) {
      kinds.multiOutput++;
      outputs = i % 10 === 2 ? ['out', 'dev', 'lib'] : ['bin', 'out'];
      attrs.push(`outputs = [ ${outputs.map((o) => `"${o}"`).join(' ')} ];`);
      // a structured derivation's builder must be a string, not a path
      if (i % 30 === 7 && i % 6 !== 5) {
        kinds.structured++;
        attrs.push('__structuredAttrs = true;', `nested = { list = [ 1 "two" ${i > 0 ? `d${i - 1}` : '3'} ]; };`);
      }
    } else if ((i % 10 === 3 || i % 10 === 8) && i % 6 !== 5) {
      kinds.structured++;
      attrs.push('__structuredAttrs = true;', `nested = { n = ${i}; s = "q\\"uote"; dirs = [ builtins.storeDir ]; };`);
    } else kinds.inputAddressed++;
    outputsOf.push(outputs);
    lines.push(`  d${i} = derivation { ${attrs.join(' ')} };`);
  }
  lines.push(`in [ ${Array.from({ length: N }, (_, i) => `d${i}`).join(' ')} ]`);
  return { nix: lines.join('\n'), kinds };
}

async function writeSources(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'src', 'tree', 'sub'), { recursive: true });
  for (let k = 0; k < 5; k++) await fs.writeFile(path.join(dir, 'src', `f${k}.txt`), `file ${k}\n`);
  await fs.writeFile(path.join(dir, 'src', 'builder.sh'), '#!/bin/sh\necho built > $out\n', { mode: 0o755 });
  await fs.writeFile(path.join(dir, 'src', 'tree', 'data'), 'data');
  await fs.writeFile(path.join(dir, 'src', 'tree', 'sub', 'run'), '#!/bin/sh\n', { mode: 0o755 });
  await fs.symlink('../data', path.join(dir, 'src', 'tree', 'sub', 'link'));
}

/** Two stores whose dirs have the same length, and the expressions' directory. */
async function twoStores(tag: string): Promise<{ top: string; a: TempStore; b: TempStore }> {
  const top = await fs.mkdtemp(path.join(os.tmpdir(), `relonix-${tag}-`));
  await writeSources(top);
  return { top, a: await tempStore(path.join(top, 'a')), b: await tempStore(path.join(top, 'b')) };
}

test('twins of 300 generated derivations at another store dir are what nix-instantiate writes there', async (t) => {
  const { top, a, b } = await twoStores('twin');
  try {
    const { nix: expr, kinds } = expression(prng(20240611));
    await fs.writeFile(path.join(top, 'expr.nix'), expr);
    const fromA = instantiate(a, path.join(top, 'expr.nix'));
    const fromB = instantiate(b, path.join(top, 'expr.nix'));
    assert.equal(fromA.length, N);
    assert.ok(kinds.structured >= 40, 'many derivations have __structuredAttrs');
    const closure = await loadClosure(a, fromA);
    const twins = computeTwins(closure, b.storeDir);

    const inB = new Set((await fs.readdir(b.storeDir)).filter((n) => !n.startsWith('.')).map((n) => path.join(b.storeDir, n)));
    const twinDrvs = [...twins.derivations.values()];
    assert.equal(twinDrvs.length, N);
    assert.deepEqual(new Set([...twinDrvs.map((tw) => tw.path), ...twins.sources.values()]), inB, 'the twins are exactly the paths Nix made at b');
    for (const [from, tw] of twins.derivations) {
      const text = await fs.readFile(tw.path);
      assert.ok(tw.aterm.equals(text), `the twin of ${from} has the text Nix wrote`);
      assert.deepEqual(
        [...tw.outputs],
        parseDerivation(text).outputs.map((o) => [o.name, o.path]),
      );
    }
    assert.deepEqual(
      fromA.map((p) => twins.derivations.get(p)!.path),
      fromB,
    );
    const outputs = [...closure.derivations.values()].reduce((n, d) => n + d.outputs.length, 0);
    assert.equal(twins.hashes.size, N + outputs + closure.sources.size);
    assert.equal(twins.unresolved.size, 0);
    const texts = [...closure.sources.values()].filter((s) => s.kind === 'text').length;
    assert.equal(texts, 20);
    assert.equal(closure.sources.size - texts, 7, 'five files, the tree and the builder script');
    t.diagnostic(`${N} derivations (${JSON.stringify(kinds)}), ${outputs} outputs, ${texts} builtins.toFile texts, ${closure.sources.size - texts} sources`);
  } finally {
    await removeTree(top);
  }
});

/** Derivations whose builds are reproducible and name their own and their inputs' paths. */
const BUILDS = `
let
  sh = script: { system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ]; PATH = "/usr/bin:/bin"; };
  dep = i: derivation (sh ''
    mkdir -p $out/lib
    printf '%s\\n' "$out" > $out/lib/self
    printf 'bin\\000%s/lib\\000tail %s' "$out" "\${builtins.storeDir}" > $out/lib/data.bin
  '' // { name = "dep-\${toString i}"; });
  deps = map dep [ 0 1 2 3 4 5 6 7 ];
in derivation (sh ''
  mkdir -p $out/share/links $out/by-hash
  for d in $deps; do
    ln -s $d/lib $out/share/links/\${"$"}{d##*/}
    printf '%s\\n' "$d" > $out/by-hash/\${"$"}{d##*/}.txt
  done
  printf '%s uses %s\\n' "$out" "$deps" > $out/self
  ln -s $out/self $out/selflink
'' // { name = "top"; inherit deps; })
`;

test('a NAR Nix dumped at one store dir, rewritten for the other, is the NAR of the same build there', async (t) => {
  requireTool('nix-store', 'nix-bin');
  const { top, a, b } = await twoStores('twin-nar');
  try {
    await fs.writeFile(path.join(top, 'builds.nix'), BUILDS);
    const [drvA] = instantiate(a, path.join(top, 'builds.nix'));
    const [drvB] = instantiate(b, path.join(top, 'builds.nix'));
    const twins = computeTwins(await loadClosure(a, [drvA!]), b.storeDir);
    assert.equal(twins.derivations.get(drvA!)!.path, drvB);
    const outA = nix(a, 'nix-store', ['--realise', drvA!]).toString().trim();
    const outB = nix(b, 'nix-store', ['--realise', drvB!]).toString().trim();
    assert.equal(outB, twins.derivations.get(drvA!)!.outputs.get('out'));
    const paths = nix(a, 'nix-store', ['--query', '--requisites', outA]).toString().trim().split('\n');
    assert.equal(paths.length, 9);
    for (const p of paths) {
      const twin = path.join(b.storeDir, `${twins.hashes.get(path.basename(p).slice(0, 32))}${path.basename(p).slice(32)}`);
      const r = rewriteNar([nix(a, 'nix-store', ['--dump', p])], { fromStoreDir: a.storeDir, toStoreDir: b.storeDir, hashes: twins.hashes });
      const out = await collect(r.chunks);
      assert.ok(out.equals(nix(b, 'nix-store', ['--dump', twin])), `the rewritten NAR of ${path.basename(p)} is the NAR Nix built at b`);
      assert.equal(`sha256:${toNixBase32(r.summary.output!.hash)}`, nix(b, 'nix-store', ['--query', '--hash', twin]).toString().trim());
      if (p !== outA) continue;
      // the eight inputs' names sort one way at a and, unless their twins' hashes happen to agree, another at b
      const names = (dir: string, ps: string[]) => ps.filter((x) => x !== dir).map((x) => path.basename(x));
      const orderA = names(outA, paths).sort();
      const orderB = orderA.map((n) => `${twins.hashes.get(n.slice(0, 32))}${n.slice(32)}`);
      const moved = orderB.join() !== [...orderB].sort().join();
      assert.equal(r.summary.resorted, moved ? 2 : 0, 'share/links and by-hash are re-sorted exactly when the order changes');
      t.diagnostic(
        `top: ${r.summary.replaced.hashes} hash parts and ${r.summary.replaced.storeDirs} store dirs rewritten, ${r.summary.resorted} directories re-sorted`,
      );
    }
  } finally {
    await removeTree(top);
  }
});
