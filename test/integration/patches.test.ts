import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/paths.ts';

const dir = path.join(REPO, 'patches');

const EVAL_ENV = { ...process.env, NIX_STATE_DIR: '/tmp/relonix-patches-eval', NIX_CONFIG: 'sandbox = false' };

function evalJson(expr: string): unknown {
  return JSON.parse(
    execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { env: EVAL_ENV, stdio: ['ignore', 'pipe', 'pipe'] }).toString(),
  );
}

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
  assert.deepEqual(evalJson(expr), { names: ['coreutils'], check: false, tagged: true });
});

test('the overlay covers a suite that sets CPU affinity (aws-c-common) and one that needs a passwd entry (coreutils), each with its reasons', () => {
  const expr = `
    let
      mk = name: { inherit name; overrideAttrs = g: mk name // g { passthru = { }; }; };
      prev = { aws-c-common = mk "aws-c-common"; coreutils = mk "coreutils"; hello = mk "hello"; };
      out = import ${path.join(dir, 'restricted-host.nix')} prev prev;
      show = p: { check = p.doCheck; installCheck = p.doInstallCheck; because = p.passthru.relonixRelaxedBecause; };
    in { names = builtins.attrNames out; aws = show out.aws-c-common; coreutils = show out.coreutils; }`;
  assert.deepEqual(evalJson(expr), {
    names: ['aws-c-common', 'coreutils'],
    aws: { check: false, installCheck: false, because: ['cpu-affinity'] },
    coreutils: { check: false, installCheck: false, because: ['passwd-entry', 'seccomp-eperm'] },
  });
});

test('what the overlay says of itself holds: relaxing checks changes the derivation, and passthru is not part of it', () => {
  // a stand-in mkDerivation as nixpkgs has it: attributes go into the derivation, passthru beside it
  const expr = `
    let
      mkDerivation = attrs:
        let drv = derivation (removeAttrs attrs [ "passthru" ] // { system = "x86_64-linux"; builder = "/bin/sh"; });
        in drv // (attrs.passthru or { }) // { passthru = attrs.passthru or { }; overrideAttrs = f: mkDerivation (attrs // f attrs); };
      coreutils = mkDerivation { name = "coreutils"; doCheck = true; doInstallCheck = true; };
      relaxed = (import ${path.join(dir, 'restricted-host.nix')} { } { inherit coreutils; }).coreutils;
      same = mkDerivation { name = "coreutils"; doCheck = false; doInstallCheck = false; };
    in {
      changed = relaxed.drvPath != coreutils.drvPath;
      passthruOutside = relaxed.drvPath == same.drvPath;
      seen = relaxed.relonixRelaxedChecks;
    }`;
  assert.deepEqual(evalJson(expr), { changed: true, passthruOutside: true, seen: true });
});
