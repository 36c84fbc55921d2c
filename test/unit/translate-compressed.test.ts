// Store references inside compressed data cannot be rewritten in place: the rewriter names the file
// and the hash parts, and looks inside a NAR that is one compressed file in any chunking. (Members of
// gzip, xz and zip files, with xz made by the host's xz: test/integration/translate-compressed.test.ts.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { rewriteNar } from '../../src/translate/rewrite.ts';
import { collect, hashOf, type Mapping, nar, type Tree } from '../helpers/nar-model.ts';

const H1 = hashOf('a');
const M: Mapping = { from: '/nix/store', to: '/tmp/store', hashes: new Map([[H1, hashOf('c')]]) };
const rules = { fromStoreDir: M.from, toStoreDir: M.to, hashes: M.hashes };
const ref = (h: string, name: string) => `/nix/store/${h}-${name}`;
const file = (contents: Buffer): Tree => ({ type: 'regular', contents });

test('a NAR that is one compressed file is inspected too, and in any chunking', async () => {
  const gz = zlib.gzipSync(`${ref(H1, 'x')} `.repeat(5000));
  const input = nar(file(gz));
  for (const size of [1, 7, 4096, input.length]) {
    const chunks = Array.from({ length: Math.ceil(input.length / size) }, (_, i) => input.subarray(i * size, (i + 1) * size));
    const r = rewriteNar(chunks, rules, { memoryLimit: 1024 });
    assert.ok((await collect(r.chunks)).equals(input));
    assert.deepEqual(r.summary.compressed, [{ file: '', format: 'gzip', found: [{ hashes: [H1], occurrences: 5000 }], rewrittenInPlace: 0 }]);
  }
});
