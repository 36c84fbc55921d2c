import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../helpers/paths.ts';

const dir = path.join(REPO, 'patches');

test('every expression under patches/ parses with Nix', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.nix'));
  assert.ok(files.length >= 2, 'patches/ should hold the overlay and the prefix Nix');
  for (const f of files) {
    const out = execFileSync('nix-instantiate', ['--parse', path.join(dir, f)], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    assert.match(out, /\S/, `${f} parsed to nothing`);
  }
});

test('the overlay relaxes checks only for packages that exist', () => {
  // a stand-in nixpkgs with two packages: the overlay must touch the listed one and skip absent names
  const expr = `
    let
      lib = { genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names); };
      mk = name: { inherit name; overrideAttrs = g: mk name // g { passthru = { }; }; };
      prev = { inherit lib; coreutils = mk "coreutils"; hello = mk "hello"; };
      out = import ${path.join(dir, 'restricted-host.nix')} prev prev;
    in { names = builtins.attrNames out; check = out.coreutils.doCheck; tagged = out.coreutils.passthru.relonixRelaxedChecks; }`;
  const json = execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], {
    env: { ...process.env, NIX_STATE_DIR: '/tmp/relonix-patches-eval', NIX_CONFIG: 'sandbox = false' },
  }).toString();
  assert.deepEqual(JSON.parse(json), { names: ['coreutils'], check: false, tagged: true });
});
