// The streaming NAR rewriter against the simple oracle (whole strings replaced, then sorted): in any
// chunking, with re-sorted directories, through a spool file, and refusing what it cannot do.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { toNixBase32 } from '../../src/store/nixbase32.ts';
import { compileRules, replaceAll, replaceIn } from '../../src/translate/replace.ts';
import { rewriteNar } from '../../src/translate/rewrite.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { chunked, collect, hashOf, type Mapping, nar, rewritten, type Tree } from '../helpers/nar-model.ts';

/** A deterministic hash part, so that a failure reads the same every run. */
const h = (seed: string) => toNixBase32(createHash('sha1').update(seed).digest());

const [H1, H2, H3] = [h('bash'), h('lib'), h('unmapped')];
const M: Mapping = {
  from: '/nix/store',
  to: '/tmp/store',
  hashes: new Map([
    [H1, h('bash twin')],
    [H2, h('lib twin')],
  ]),
};
const rules = (m: Mapping) => ({ fromStoreDir: m.from, toStoreDir: m.to, hashes: m.hashes });
const file = (s: string, executable = false): Tree => ({ type: 'regular', contents: Buffer.from(s, 'latin1'), executable });

function sample(): Tree {
  const binary = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff)).toString('latin1');
  return {
    type: 'directory',
    entries: {
      bin: {
        type: 'directory',
        entries: {
          tool: file(
            `#!/nix/store/${H1}-bash/bin/sh\nexec /nix/store/${H2}-lib/bin/x "$@"\n${binary}${H1}${H1}/nix/store/nix/store${H3}\0/nix/store/${H3}-other`,
            true,
          ),
          starts: file(`/nix/store/${H2}-lib`),
          ends: file(`x/nix/store/${H1}`),
          bare: file(H2),
          short: file('/nix/stor'),
          empty: file(''),
        },
      },
      lib: { type: 'symlink', target: `/nix/store/${H2}-lib/lib` },
      [`${H1}-data`]: { type: 'directory', entries: { [`${H2}.conf`]: file(`see /nix/store/${H2}-lib`) } },
    },
  };
}

async function rewriteAll(chunks: Iterable<Buffer>, m = M, opts = {}) {
  const r = rewriteNar(chunks, rules(m), opts);
  return { out: await collect(r.chunks), summary: r.summary };
}

test('a rewrite cut at every offset is the oracle byte for byte', async () => {
  const input = nar(sample());
  const want = nar(rewritten(sample(), M));
  assert.equal(want.length, input.length);
  assert.ok(!want.equals(input));
  // one run per phase, cut every STRIDE bytes: each offset is a cut once, and a cut inside a match
  // (at most 43 bytes: store dir, slash, hash part) is the only one in it
  const STRIDE = 61;
  for (let k = 0; k < STRIDE; k++) {
    const cuts = Array.from({ length: Math.ceil(input.length / STRIDE) }, (_, i) => k + i * STRIDE).filter((c) => c <= input.length);
    const { out } = await rewriteAll(chunked(input, cuts));
    assert.ok(out.equals(want), `cuts at ${k} + n * ${STRIDE}`);
  }
  const { out, summary } = await rewriteAll(
    chunked(
      input,
      Array.from({ length: input.length - 1 }, (_, i) => i + 1),
    ),
  );
  assert.ok(out.equals(want), 'one byte a chunk');
  assert.deepEqual(summary.replaced, { hashes: 11, storeDirs: 9 });
  assert.ok(summary.output!.hash.equals(createHash('sha256').update(want).digest()));
  assert.ok(summary.input!.hash.equals(createHash('sha256').update(input).digest()));
  assert.equal(summary.output!.size, input.length);
});

test('with no hash parts to map, only the store dir changes and nothing is held back', async () => {
  const m: Mapping = { from: '/nix/store', to: '/app/store', hashes: new Map() };
  const input = nar(sample());
  const r = rewriteNar(chunked(input, [100, 2000]), rules(m), { memoryLimit: 0, tmpDir: '/nonexistent' });
  const out = await collect(r.chunks);
  assert.ok(out.equals(nar(rewritten(sample(), m))));
  assert.equal(r.summary.spilled, 0);
  assert.equal(r.summary.replaced.hashes, 0);
});

test('entries whose rewritten names change their order are re-sorted, at every depth', async () => {
  // old order: a… < m < z…; new order: 0… < m < z…, so the two hashed names swap places
  const [A, B, C, D] = [hashOf('a'), hashOf('z'), hashOf('b'), hashOf('c')];
  const m: Mapping = {
    from: '/nix/store',
    to: '/tmp/store',
    hashes: new Map([
      [A, hashOf('y')],
      [B, hashOf('0')],
      [C, hashOf('d')],
      [D, hashOf('1')],
    ]),
  };
  const tree: Tree = {
    type: 'directory',
    entries: {
      [`${A}-x`]: { type: 'directory', entries: { [`${C}-c`]: file(`/nix/store/${A}`), [`${D}-d`]: file('d'), keep: file('k') } },
      'm-plain': file(`/nix/store/${B}-y`),
      [`${B}-y`]: { type: 'symlink', target: `/nix/store/${C}-c` },
      unchanged: { type: 'directory', entries: { [`${A}`]: file('only renamed, order kept') } },
    },
  };
  const input = nar(tree);
  const want = nar(rewritten(tree, m));
  for (const cuts of [[], [7, 200, 201, 450], Array.from({ length: 40 }, (_, i) => i * 25 + 3)]) {
    const { out, summary } = await rewriteAll(chunked(input, cuts), m);
    assert.ok(out.equals(want), `cuts ${cuts.length}`);
    assert.equal(summary.resorted, 2);
  }
  // the result is a valid NAR: a second pass (which checks the order) takes it as it is
  const again = await rewriteAll([want], { from: '/tmp/store', to: '/tmp/store', hashes: new Map() });
  assert.ok(again.out.equals(want));
});

test('held-back output past the memory limit goes to a temporary file that is gone at once', async () => {
  const tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-spool-test-'));
  try {
    const input = nar(sample());
    const r = rewriteNar(chunked(input, [64, 65, 500]), rules(M), { memoryLimit: 256, tmpDir });
    const out: Buffer[] = [];
    for await (const c of r.chunks) {
      out.push(c);
      assert.deepEqual(await fs.readdir(tmpDir), [], 'the spool file has no name while it is in use');
    }
    assert.ok(Buffer.concat(out).equals(nar(rewritten(sample(), M))));
    assert.equal(r.summary.spilled, input.length);
  } finally {
    await fs.rm(tmpDir, { recursive: true, force: true });
  }
});

test('a reader that stops early lets the input go and leaves no spool file', async () => {
  const tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-spool-test-'));
  try {
    const big = Buffer.from(`/nix/store/${H1}-x `.repeat(20000), 'latin1');
    // streamed as it is read: a directory when only the store dir changes, a single file always
    const cases: [Tree, Mapping][] = [
      [
        { type: 'directory', entries: { big: { type: 'regular', contents: big } } },
        { ...M, hashes: new Map() },
      ],
      [{ type: 'regular', contents: big }, M],
    ];
    for (const [tree, m] of cases) {
      const input = nar(tree);
      let read = 0;
      let closed = false;
      const src = (function* () {
        try {
          for (const c of chunked(
            input,
            Array.from({ length: 99 }, (_, i) => (i + 1) * 8192),
          )) {
            read++;
            yield c;
          }
        } finally {
          closed = true;
        }
      })();
      const r = rewriteNar(src, rules(m), { memoryLimit: 64, tmpDir });
      for await (const c of r.chunks) {
        assert.ok(c.length > 0);
        break;
      }
      assert.ok(closed && read < 99, `the input was let go after ${read} of its 100 chunks`);
      assert.equal(r.summary.output, undefined, 'no NarHash for a NAR that was not read to its end');
    }
    assert.deepEqual(await fs.readdir(tmpDir), []);
  } finally {
    await fs.rm(tmpDir, { recursive: true, force: true });
  }
});

test('store dirs of different lengths, and bad hash maps, are refused before any byte is read', () => {
  const refused = (m: Mapping, re: RegExp) =>
    assert.throws(
      () => rewriteNar([], rules(m)),
      (e: unknown) => e instanceof RelonixError && e.kind === 'usage' && re.test(e.message) && !!e.hint,
    );
  refused(
    { from: '/nix/store', to: '/tmp/nix/store', hashes: new Map() },
    /the store \/nix\/store \(10 bytes\) cannot be rewritten in place into \/tmp\/nix\/store \(14 bytes\)/,
  );
  refused({ from: '/nix/store', to: '/nix/store/', hashes: new Map() }, /not a store dir/);
  refused({ from: '/nix/store', to: '/tmp/store', hashes: new Map([[H1, 'short']]) }, /"short" is not a store hash part/);
  refused({ from: '/nix/store', to: '/tmp/store', hashes: new Map([[`${H1.slice(1)}e`, H2]]) }, /is not a store hash part/);
  refused(
    {
      from: '/nix/store',
      to: '/tmp/store',
      hashes: new Map([
        [H1, H3],
        [H2, H3],
      ]),
    },
    /two hash parts are mapped to/,
  );
});

test('a malformed NAR is an integrity error', async () => {
  const good = nar(sample());
  const unsorted = Buffer.from(good.toString('latin1').replace('bare', 'zare'), 'latin1');
  const badPad = Buffer.from(good);
  badPad[good.indexOf('/nix/stor\0') + 9] = 1;
  const cases = {
    truncated: good.subarray(0, good.length - 8),
    trailing: Buffer.concat([good, Buffer.alloc(8)]),
    unsorted,
    badPad,
    magic: Buffer.from('nix-archive-2'),
  };
  for (const [what, bytes] of Object.entries(cases)) {
    await assert.rejects(
      collect(rewriteNar([bytes], rules(M)).chunks),
      (e: unknown) => e instanceof RelonixError && e.kind === 'integrity' && /the NAR is malformed/.test(e.message),
      what,
    );
  }
  const twice: Tree = { type: 'directory', entries: { [H1]: file('1'), [M.hashes.get(H1)!]: file('2') } };
  await assert.rejects(
    collect(rewriteNar([nar(twice)], rules(M)).chunks),
    (e: unknown) => e instanceof RelonixError && e.kind === 'integrity' && /both called/.test(e.message),
  );
});

test('store dirs are found at every offset of a buffer that spans several of the search windows, each once, and only before the limit', () => {
  const c = compileRules({ fromStoreDir: '/nix/store', toStoreDir: '/tmp/nix/s', hashes: new Map() });
  const dir = '/nix/store';
  for (const offset of [0, 1, 8181, 8182, 8183, 8190, 8191, 8192, 16374, 16375, 16383, 24575]) {
    // dirs back to back straddle each window edge at some offset; a partial one ends the text
    const text = `${'x'.repeat(offset)}${dir.repeat(5)}y${dir}${'z'.repeat(9000)}${dir}/nix/sto`;
    const counts = { hashes: 0, storeDirs: 0 };
    const out = replaceAll(Buffer.from(text, 'latin1'), c, counts);
    assert.equal(out.toString('latin1'), text.replaceAll(dir, '/tmp/nix/s'), `offset ${offset}`);
    assert.equal(counts.storeDirs, 7, `offset ${offset}`);
    // a match that starts before the limit is replaced whole; one that starts at it is left
    const buf = Buffer.from(text, 'latin1');
    const limit = offset + 2 * dir.length + 3;
    const some = { hashes: 0, storeDirs: 0 };
    replaceIn(buf, limit, c, some);
    assert.equal(some.storeDirs, 3, `offset ${offset}`);
    assert.equal(buf.toString('latin1', offset, offset + 3 * dir.length), '/tmp/nix/s'.repeat(3));
    assert.equal(buf.toString('latin1', offset + 3 * dir.length, offset + 4 * dir.length), dir);
  }
});

test('a store dir that is not ASCII is found by its UTF-8 bytes', () => {
  const c = compileRules({ fromStoreDir: '/tmp/nï/s', toStoreDir: '/nix/store', hashes: new Map() });
  const text = Buffer.concat([Buffer.from('a '), Buffer.from('/tmp/nï/s/x and /tmp/ni/s'), Buffer.from([0xff, 0xc3])]);
  const counts = { hashes: 0, storeDirs: 0 };
  const out = replaceAll(text, c, counts);
  assert.equal(counts.storeDirs, 1);
  assert.deepEqual(out, Buffer.concat([Buffer.from('a /nix/store/x and /tmp/ni/s'), Buffer.from([0xff, 0xc3])]));
});
