// Store path formulas against paths Nix 2.8 made: sources, fixed outputs of every method and
// algorithm, text files with references, .drv files and input-addressed outputs.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { parseDerivation } from '../../src/store/aterm.ts';
import { toNixBase32 } from '../../src/store/nixbase32.ts';
import {
  compressHash,
  makeFixedOutputPath,
  makeOutputPath,
  makeSourcePath,
  makeStorePath,
  makeTextPath,
  outputPathName,
  parseContentAddress,
} from '../../src/translate/paths.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { ADDED_PATHS, NIX_STORE_DRVS, NIX_STORE_SOURCES, TMP_STORE_DRVS } from './translate-vectors.ts';

test('paths added from disk and fixed outputs match what nix-store --add and --add-fixed gave', () => {
  for (const v of ADDED_PATHS) assert.equal(makeFixedOutputPath(v.method, v.algo, v.hex, v.name, '/nix/store'), v.path, `${v.method} ${v.algo} ${v.name}`);
  const hello = ADDED_PATHS[0];
  assert.equal(makeSourcePath(hello.name, hello.hex, '/nix/store'), hello.path);
  assert.equal(
    hello.hex,
    createHash('sha256')
      .update(Buffer.concat([narHeader(12), Buffer.from('hello world\n'), Buffer.alloc(4), narToken(')')]))
      .digest('hex'),
  );
});

/** The NAR of a regular file up to its contents, as nix-store --dump writes it. */
function narHeader(size: number): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(size));
  return Buffer.concat([...['nix-archive-1', '(', 'type', 'regular', 'contents'].map(narToken), len]);
}

function narToken(s: string): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(s.length));
  return Buffer.concat([len, Buffer.from(s), Buffer.alloc((8 - (s.length % 8)) % 8)]);
}

test('content addresses from nix path-info read as the digests nix-hash gave', () => {
  assert.deepEqual(parseContentAddress(NIX_STORE_SOURCES.hello.ca), { kind: 'fixed', method: 'recursive', algo: 'sha256', hex: ADDED_PATHS[0].hex });
  const note = NIX_STORE_SOURCES.note;
  assert.deepEqual(parseContentAddress(note.ca), { kind: 'text', hex: createHash('sha256').update(note.text).digest('hex') });
  const sha1 = ADDED_PATHS[3].hex;
  assert.deepEqual(parseContentAddress(`fixed:sha1:${sha1}`), { kind: 'fixed', method: 'flat', algo: 'sha1', hex: sha1 });
  const b32 = toNixBase32(Buffer.from(sha1, 'hex'));
  assert.deepEqual(parseContentAddress(`fixed:r:sha1:${b32}`), { kind: 'fixed', method: 'recursive', algo: 'sha1', hex: sha1 });
  for (const bad of ['fixed:r:sha256', 'text:sha1:00', 'fixed:sha3:00', 'fixed:sha256:xyz', 'nar:sha256:00', `fixed:r:sha256:${'e'.repeat(52)}`]) {
    assert.throws(
      () => parseContentAddress(bad),
      (e: unknown) => e instanceof RelonixError && e.kind === 'integrity',
      bad,
    );
  }
});

test('a builtins.toFile text and every .drv file get the path Nix gave them', () => {
  const note = NIX_STORE_SOURCES.note;
  assert.equal(makeTextPath('note.txt', note.text, note.references, '/nix/store'), note.path);
  // references are a set: a .drv that is both an input source and an input derivation counts once
  assert.equal(makeTextPath('note.txt', note.text, [...note.references, ...note.references], '/nix/store'), note.path);
  for (const [p, text] of Object.entries({ ...NIX_STORE_DRVS, ...TMP_STORE_DRVS })) {
    const d = parseDerivation(Buffer.from(text, 'latin1'));
    const refs = [...d.inputDrvs.map((i) => i.path), ...d.inputSrcs].reverse(); // any order: Nix sorts them
    const name = p.slice(p.lastIndexOf('/') + 34);
    const storeDir = p.slice(0, p.lastIndexOf('/'));
    assert.equal(makeTextPath(name, text, refs, storeDir), p);
  }
});

test('fixed outputs in .drv files are the paths their hashes give', () => {
  for (const [p, text] of Object.entries({ ...NIX_STORE_DRVS, ...TMP_STORE_DRVS })) {
    const d = parseDerivation(Buffer.from(text, 'latin1'));
    const o = d.outputs[0]!;
    if (!o.hash) continue;
    const recursive = o.hashAlgo.startsWith('r:');
    const name = p.slice(p.lastIndexOf('/') + 34, -4);
    assert.equal(makeFixedOutputPath(recursive ? 'recursive' : 'flat', o.hashAlgo.replace('r:', ''), o.hash, name, p.slice(0, p.lastIndexOf('/'))), o.path);
  }
});

test('the formula: sha256 over type, digest, store dir and name, folded to 20 bytes', () => {
  const digest = randomBytes(32);
  const folded = compressHash(digest, 20);
  for (let i = 0; i < 20; i++) assert.equal(folded[i], i < 12 ? digest[i]! ^ digest[i + 20]! : digest[i]);
  const hex = randomBytes(32).toString('hex');
  const s = `output:dev:sha256:${hex}:/tmp/store:pkg-dev`;
  const expect = toNixBase32(compressHash(createHash('sha256').update(s).digest(), 20));
  assert.equal(makeOutputPath('dev', hex, 'pkg', '/tmp/store'), `/tmp/store/${expect}-pkg-dev`);
  assert.equal(makeStorePath('output:dev', hex, 'pkg-dev', '/tmp/store'), `/tmp/store/${expect}-pkg-dev`);
  assert.equal(outputPathName('pkg', 'out'), 'pkg');
  assert.equal(outputPathName('pkg', 'lib'), 'pkg-lib');
  assert.notEqual(makeOutputPath('out', hex, 'pkg', '/tmp/store').slice(11, 43), makeOutputPath('out', hex, 'pkg', '/app/store').slice(11, 43));
});

test('a digest of the wrong length or an unknown algorithm is refused', () => {
  const cases: [string, string][] = [
    ['sha256', 'ab'],
    ['sha1', ADDED_PATHS[0].hex],
    ['blake3', ADDED_PATHS[0].hex],
    ['sha256', ADDED_PATHS[0].hex.toUpperCase()],
  ];
  for (const [algo, hex] of cases) {
    assert.throws(
      () => makeFixedOutputPath('flat', algo, hex, 'x', '/nix/store'),
      (e: unknown) => e instanceof RelonixError && e.kind === 'integrity',
      algo,
    );
  }
});
