// The closure translate reads from a store (the .drv files, and nix-store for the sources' records):
// every source's content address is found from its path's formula, and must be the one Nix recorded
// (`nix path-info --json`), for each way a path gets into a store: a file from disk, builtins.toFile naming it, flat and
// recursive fixed paths of other algorithms.

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { layout } from '../../src/prefix/layout.ts';
import { loadClosure } from '../../src/translate/closure.ts';
import { parseContentAddress } from '../../src/translate/paths.ts';
import { computeTwins } from '../../src/translate/twin.ts';
import { removeTree } from '../../src/util/fs.ts';
import { instantiate, nix, tempStore } from '../helpers/nix-store.ts';
import { requireRoot, requireTool } from '../helpers/tools.ts';

requireTool('nix-instantiate', 'nix-bin');
requireRoot('nix-instantiate writes to stores of its own only as root');

test("every source's content address, found from its path alone, is the one Nix recorded", async () => {
  const top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-closure-'));
  try {
    const s = await tempStore(path.join(top, 's'));
    await fs.writeFile(path.join(top, 'hello.txt'), 'hello world\n');
    await fs.mkdir(path.join(top, 'tree', 'sub'), { recursive: true });
    await fs.writeFile(path.join(top, 'tree', 'data'), 'data');
    await fs.writeFile(path.join(top, 'tree', 'sub', 'run'), '#!/bin/sh\n', { mode: 0o755 });
    const add = (...args: string[]) => nix(s, 'nix-store', args).toString().trim();
    const fixed = {
      flat256: add('--add-fixed', 'sha256', path.join(top, 'hello.txt')),
      flat512: add('--add-fixed', 'sha512', path.join(top, 'hello.txt')),
      recSha1: add('--add-fixed', '--recursive', 'sha1', path.join(top, 'tree')),
    };
    const expr = `derivation {
      name = "uses-all"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ];
      file = ./hello.txt; tree = ./tree;
      note = builtins.toFile "note.txt" "see \${./hello.txt}";
      ${Object.entries(fixed)
        .map(([k, p]) => `${k} = builtins.storePath "${p}";`)
        .join('\n      ')}
    }`;
    await fs.writeFile(path.join(top, 'e.nix'), expr);
    const drvs = instantiate(s, path.join(top, 'e.nix'));
    const { closure, records } = await loadClosure({ layout: layout(path.join(top, 'prefix'), s.storeDir), nixStore: '/usr/bin/nix-store', env: s.env }, drvs);
    assert.equal(closure.derivations.size, 1);
    assert.equal(closure.sources.size, 6, 'the file, the tree, the text and three fixed paths');
    // the database's records are read for the sources alone: a derivation's references are its inputs
    assert.deepEqual([...records.keys()].sort(), [...closure.sources.keys()].sort());
    const infos = JSON.parse(nix(s, 'nix', ['path-info', '--json', ...closure.sources.keys()]).toString()) as { path: string; ca: string }[];
    for (const i of infos) {
      const got = closure.sources.get(i.path)!;
      const ca = parseContentAddress(i.ca);
      if (ca.kind === 'text') {
        assert.equal(got.kind, 'text', i.path);
        assert.equal(
          Buffer.from(got.kind === 'text' ? got.text : []).toString(),
          `see ${nix(s, 'nix-store', ['--add', path.join(top, 'hello.txt')])
            .toString()
            .trim()}`,
        );
      } else assert.deepEqual(got, ca, i.path);
    }
    const kinds = [...closure.sources.values()].map((c) => (c.kind === 'fixed' ? `${c.method}:${c.algo}` : c.kind)).sort();
    assert.deepEqual(kinds, ['flat:sha256', 'flat:sha512', 'recursive:sha1', 'recursive:sha256', 'recursive:sha256', 'text']);
    const twins = computeTwins(closure, '/tmp/store', { partial: true });
    assert.equal(twins.refused.size, 0);
    assert.equal(twins.sources.size, 6);
  } finally {
    await removeTree(top);
  }
});
