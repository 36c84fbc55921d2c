// The ATerm form of derivations: what Nix writes reads back and prints byte for byte, any byte
// survives, and a damaged file is an integrity error, not a wrong derivation.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Derivation, parseDerivation, printDerivation } from '../../src/store/aterm.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { NIX_STORE_DRVS, TMP_STORE_DRVS } from './translate-vectors.ts';

const bytes = (s: string) => Buffer.from(s, 'latin1');

test('every .drv Nix wrote prints back byte for byte', () => {
  const all = { ...NIX_STORE_DRVS, ...TMP_STORE_DRVS };
  assert.equal(Object.keys(all).length, 8);
  for (const [p, text] of Object.entries(all)) {
    const printed = printDerivation(parseDerivation(bytes(text)));
    assert.ok(printed.equals(bytes(text)), `${p} changed in a round trip`);
  }
});

test('fields come out unescaped, in the order Nix wrote them', () => {
  const multi = parseDerivation(bytes(NIX_STORE_DRVS['/nix/store/jqjgkdvfds8sr3cpqkvqr72v28klkzis-multi.drv']!));
  assert.deepEqual(multi.args, ['-c', 'q"b\\s\nn\rr\tt']);
  assert.deepEqual(
    multi.outputs.map((o) => o.name),
    ['dev', 'lib', 'out'],
  );
  assert.equal(multi.outputs[2]!.path, '/nix/store/sy8knrf9c9bap4lg1hwf8s7g056w04g6-multi');
  assert.deepEqual(multi.inputDrvs, [{ path: '/nix/store/jj3sdm8mkyri0s1gafl553l32rq7g864-flat.drv', outputs: ['out'] }]);
  assert.deepEqual(multi.inputSrcs, ['/nix/store/kj0hxvglz5jraww78pimlb0a1y1qk2cl-note.txt']);
  assert.deepEqual(
    multi.env.find(([k]) => k === 'outputs'),
    ['outputs', 'out dev lib'],
  );
  const flat = parseDerivation(bytes(NIX_STORE_DRVS['/nix/store/jj3sdm8mkyri0s1gafl553l32rq7g864-flat.drv']!));
  assert.deepEqual(flat.outputs[0], {
    name: 'out',
    path: '/nix/store/jafr3l9gcgc9kss6avik01b7k153scmh-flat',
    hashAlgo: 'sha256',
    hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  });
});

test('every byte value survives a print and a parse', () => {
  let all = '';
  for (let b = 1; b < 256; b++) all += String.fromCharCode(b);
  const utf8 = Buffer.from('grüße 🚀', 'utf8').toString('latin1');
  const drv: Derivation = {
    outputs: [{ name: 'out', path: '/nix/store/00000000000000000000000000000000-x', hashAlgo: '', hash: '' }],
    inputDrvs: [],
    inputSrcs: [],
    system: 'x86_64-linux',
    builder: '/bin/sh',
    args: [all, '', '\\\\""', utf8],
    env: [
      ['all', all],
      ['empty', ''],
    ],
  };
  const printed = printDerivation(drv);
  assert.deepEqual(parseDerivation(printed), drv);
  assert.ok(printDerivation(parseDerivation(printed)).equals(printed));
  assert.ok(printed.includes(Buffer.from('grüße 🚀', 'utf8')), 'UTF-8 text is written as the bytes it was');
});

test('a damaged .drv is an integrity error that says where', () => {
  const good = NIX_STORE_DRVS['/nix/store/zr4vhpsgr5p0x2lfg91cx9ndmqfrnp6i-top.drv']!;
  const cases = [
    good.slice(0, -1),
    `${good} `,
    good.replace('Derive(', 'Derive['),
    good.slice(0, 200),
    'DrvWithVersion("xp-dyn-drv",[])',
    '',
    'Derive([("out","/x\\',
  ];
  for (const text of cases) {
    assert.throws(
      () => parseDerivation(bytes(text)),
      (e: unknown) => e instanceof RelonixError && e.kind === 'integrity' && /ATerm form: .* at byte \d+/.test(e.message),
      JSON.stringify(text.slice(-30)),
    );
  }
});
