// Twins of a small closure Nix evaluated at two store dirs: /nix/store's computed for /tmp/store
// are exactly what Nix wrote there, and back again. What the formulas do not cover is refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Derivation, parseDerivation, printDerivation } from '../../src/store/aterm.ts';
import { computeOutputs, derivationName, hashDerivationModulo, type ModuloHash, withOutputs } from '../../src/translate/modulo.ts';
import { makeTextPath, parseContentAddress } from '../../src/translate/paths.ts';
import { type Closure, computeTwins, type SourceContent } from '../../src/translate/twin.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { NIX_STORE_DRVS, NIX_STORE_SOURCES, TMP_STORE_DRVS } from './translate-vectors.ts';

const parse = (text: string) => parseDerivation(Buffer.from(text, 'latin1'));

function nixStoreClosure(): Closure {
  const derivations = new Map(Object.entries(NIX_STORE_DRVS).map(([p, t]) => [p, parse(t)]));
  const hello = parseContentAddress(NIX_STORE_SOURCES.hello.ca);
  assert.equal(hello.kind, 'fixed');
  const { note } = NIX_STORE_SOURCES;
  const sources = new Map<string, SourceContent>([
    [NIX_STORE_SOURCES.hello.path, hello as SourceContent],
    [note.path, { kind: 'text', text: Buffer.from(note.text), references: [...note.references] }],
  ]);
  return { storeDir: '/nix/store', derivations, sources };
}

const byName = (drvs: Record<string, string>) => new Map(Object.entries(drvs).map(([p, t]) => [derivationName(p), { path: p, text: t }]));

test('the /tmp/store twins of a /nix/store closure are the .drv files Nix wrote at /tmp/store', () => {
  const twins = computeTwins(nixStoreClosure(), '/tmp/store');
  const nix = byName(TMP_STORE_DRVS);
  assert.equal(twins.derivations.size, 4);
  for (const [from, twin] of twins.derivations) {
    const want = nix.get(derivationName(from))!;
    assert.equal(twin.path, want.path, from);
    assert.equal(twin.aterm.toString('latin1'), want.text, from);
    assert.deepEqual(
      [...twin.outputs],
      parse(want.text).outputs.map((o) => [o.name, o.path]),
    );
  }
  // 4 .drv files, 3 + 1 + 1 + 1 outputs, 2 sources
  assert.equal(twins.hashes.size, 12);
  assert.equal(twins.unresolved.size, 0);
  const hello = twins.sources.get(NIX_STORE_SOURCES.hello.path)!;
  assert.ok(TMP_STORE_DRVS[nix.get('top')!.path]!.includes(`"builder","${hello}"`));
});

test('twins of the twins are the originals, and the hash maps invert', () => {
  const closure = nixStoreClosure();
  const there = computeTwins(closure, '/tmp/store');
  const sources = new Map<string, SourceContent>();
  for (const [from, to] of there.sources) {
    const c = closure.sources.get(from)!;
    if (c.kind === 'fixed') sources.set(to, c);
    else {
      // the text Nix wrote at /tmp/store names the references' twins
      let text = Buffer.from(c.text).toString();
      for (const r of c.references) text = text.replaceAll(r, there.sources.get(r)!);
      sources.set(to, { kind: 'text', text: Buffer.from(text), references: c.references.map((r) => there.sources.get(r)!) });
    }
  }
  const derivations = new Map([...there.derivations.values()].map((t) => [t.path, t.drv]));
  const back = computeTwins({ storeDir: '/tmp/store', derivations, sources }, '/nix/store');
  for (const [from, twin] of there.derivations) {
    const again = back.derivations.get(twin.path)!;
    assert.equal(again.path, from);
    assert.equal(again.aterm.toString('latin1'), NIX_STORE_DRVS[from]);
  }
  for (const [a, b] of there.hashes) assert.equal(back.hashes.get(b), a);
});

test('a twin at the same store dir is the derivation itself', () => {
  const twins = computeTwins(nixStoreClosure(), '/nix/store');
  for (const [from, twin] of twins.derivations) {
    assert.equal(twin.path, from);
    assert.equal(twin.aterm.toString('latin1'), NIX_STORE_DRVS[from]);
  }
  for (const [a, b] of twins.hashes) assert.equal(a, b);
});

test('a fixed-output input fetched another way changes no output path that depends on it', () => {
  const c = nixStoreClosure();
  const flatPath = '/nix/store/jj3sdm8mkyri0s1gafl553l32rq7g864-flat.drv';
  const multiPath = '/nix/store/jqjgkdvfds8sr3cpqkvqr72v28klkzis-multi.drv';
  const flat = c.derivations.get(flatPath)!;
  const other: Derivation = { ...flat, args: ['-c', 'fetch it elsewhere > $out'] };
  const otherPath = makeTextPath('flat.drv', printDerivation(other), [], '/nix/store');
  assert.notEqual(otherPath, flatPath);
  const modulo = new Map<string, ModuloHash>([
    [flatPath, hashDerivationModulo(flat, 'flat', '/nix/store', () => assert.fail('a fixed output hashes without its inputs'), false)],
    [otherPath, hashDerivationModulo(other, 'flat', '/nix/store', () => assert.fail('a fixed output hashes without its inputs'), false)],
  ]);
  assert.deepEqual(modulo.get(flatPath), modulo.get(otherPath));
  const multi = c.derivations.get(multiPath)!;
  const moved: Derivation = { ...multi, inputDrvs: [{ path: otherPath, outputs: ['out'] }] };
  const get = (p: string) => modulo.get(p)!;
  assert.deepEqual(computeOutputs(moved, 'multi', '/nix/store', get), multi.outputs);
  assert.deepEqual(withOutputs(moved, computeOutputs(moved, 'multi', '/nix/store', get)).env, multi.env);
});

function refused(closure: Closure, kind: string, message: RegExp): void {
  assert.throws(
    () => computeTwins(closure, '/tmp/store'),
    (e: unknown) => e instanceof RelonixError && e.kind === kind && message.test(e.message) && !!e.hint,
  );
}

test('content-addressed outputs and incomplete closures are refused', () => {
  const top = '/nix/store/zr4vhpsgr5p0x2lfg91cx9ndmqfrnp6i-top.drv';
  const edit = (f: (d: Derivation) => Derivation) => {
    const c = nixStoreClosure();
    c.derivations.set(top, f(c.derivations.get(top)!));
    return c;
  };
  refused(
    edit((d) => ({ ...d, env: [['__contentAddressed', '1'], ...d.env] })),
    'usage',
    /__contentAddressed/,
  );
  refused(
    edit((d) => ({ ...d, outputs: [{ name: 'out', path: '', hashAlgo: 'r:sha256', hash: '' }] })),
    'usage',
    /a content-addressed derivation \(__contentAddressed: its output "out" is not fixed\)/,
  );
  refused(
    edit((d) => ({ ...d, outputs: [{ name: 'out', path: '', hashAlgo: '', hash: '' }] })),
    'usage',
    /has no path/,
  );
  const noMulti = nixStoreClosure();
  noMulti.derivations.delete('/nix/store/jqjgkdvfds8sr3cpqkvqr72v28klkzis-multi.drv');
  refused(noMulti, 'usage', /incomplete: it lacks .*multi\.drv/);
  const noNote = nixStoreClosure();
  noNote.sources.delete(NIX_STORE_SOURCES.note.path);
  refused(noNote, 'usage', /incomplete: it lacks .*note\.txt/);
});

test('a closure whose paths do not follow from its contents is an integrity error', () => {
  const tampered = nixStoreClosure();
  const top = '/nix/store/zr4vhpsgr5p0x2lfg91cx9ndmqfrnp6i-top.drv';
  const d = tampered.derivations.get(top)!;
  tampered.derivations.set(top, { ...d, env: d.env.map(([k, v]) => [k, k === 'name' ? v : v.replace('multi-dev', 'multi-lib')]) });
  refused(tampered, 'integrity', /top\.drv does not follow .*output paths/);
  const wrongText = nixStoreClosure();
  wrongText.sources.set(NIX_STORE_SOURCES.note.path, { kind: 'text', text: Buffer.from('other text'), references: [...NIX_STORE_SOURCES.note.references] });
  refused(wrongText, 'integrity', /note\.txt does not follow/);
  const wrongCa = nixStoreClosure();
  wrongCa.sources.set(NIX_STORE_SOURCES.hello.path, { kind: 'fixed', method: 'flat', algo: 'sha256', hex: '0'.repeat(64) });
  refused(wrongCa, 'integrity', /hello\.txt does not follow .*content address is fixed:sha256/);
});

test('a bare store dir moves, a longer name that starts with it does not, and unknown paths are listed', () => {
  const unknown = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-elsewhere';
  const base: Derivation = {
    outputs: [{ name: 'out', path: '', hashAlgo: '', hash: '' }],
    inputDrvs: [],
    inputSrcs: [],
    system: 'x86_64-linux',
    builder: '/bin/sh',
    args: ['-c', `ls /nix/store; ls /nix/store/; ls /nix/store-x ${unknown}/bin`],
    env: [
      ['out', ''],
      ['storeDir', '/nix/store'],
    ],
  };
  const drv = withOutputs(
    base,
    computeOutputs(base, 'odd', '/nix/store', () => assert.fail('no inputs')),
  );
  const path = makeTextPath('odd.drv', printDerivation(drv), [], '/nix/store');
  const twins = computeTwins({ storeDir: '/nix/store', derivations: new Map([[path, drv]]), sources: new Map() }, '/app/store');
  const twin = twins.derivations.get(path)!;
  assert.equal(twin.drv.args[1], `ls /app/store; ls /app/store/; ls /nix/store-x ${unknown.replace('/nix/', '/app/')}/bin`);
  assert.deepEqual(twin.drv.env[1], ['storeDir', '/app/store']);
  assert.deepEqual([...twins.unresolved], [unknown]);
  assert.ok(twin.outputs.get('out')!.startsWith('/app/store/'));
});
