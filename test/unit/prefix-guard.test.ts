// The decisions about a prefix that need no disk: which paths Nix can live at, which state files can
// be read, which store dirs hold only a store, which profile elements a re-bootstrap replaces, and
// how the generated scripts quote a prefix, comments included.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { envScripts, wrapperScript } from '../../src/prefix/environment.ts';
import { MAX_PREFIX_BYTES, pathProblems } from '../../src/prefix/guard.ts';
import { layout } from '../../src/prefix/layout.ts';
import { parseElements } from '../../src/prefix/profile.ts';
import { stateShapeProblem } from '../../src/prefix/state.ts';
import { foreignStoreEntries } from '../../src/prefix/uninstall.ts';
import { machinesText, sshConfigText } from '../../src/remote/machines.ts';
import { translatorFiles } from '../../src/translator/config.ts';
import { ensureScript } from '../../src/translator/setup.ts';
import { errnoWords, fromSystemError, isNoSpace, noSpace, RelonixError } from '../../src/util/errors.ts';
import { shQuote } from '../../src/util/shell.ts';

test('a prefix Nix can live at passes; each character that breaks a relocated Nix, and each length past a limit, is one problem with its fix', () => {
  assert.deepEqual(pathProblems('prefix', '/tmp/nix', MAX_PREFIX_BYTES), []);
  assert.deepEqual(pathProblems('prefix', '/home/élodie/nix+1@x=y', MAX_PREFIX_BYTES), [], 'what Nix 2.8 takes is not refused');
  for (const [p, said] of [
    ['/tmp/a\nb', /a control character \("\\n"\)/],
    ['/tmp/a\x1b[31mb', /a control character \("\\u001b"\)/],
    ['/tmp/a b', /whitespace/],
    ['/tmp/a\tb', /a control character/],
    ['/tmp/a"b', /a double quote/],
    ['/tmp/a\\b', /a backslash/],
    ['/tmp/a:b', /a colon/],
    ['/tmp/a;b', /a semicolon/],
  ] as const) {
    const problems = pathProblems('prefix', p, MAX_PREFIX_BYTES);
    assert.equal(problems.length, 1, JSON.stringify(p));
    assert.match(problems[0]!.message, said);
    assert.match(problems[0]!.hint, /--prefix/);
  }
  assert.equal(MAX_PREFIX_BYTES, 483, "512 bytes, less the database journal's path under the prefix");
  const at = `/${'a'.repeat(200)}/${'b'.repeat(200)}/${'c'.repeat(MAX_PREFIX_BYTES - 403)}`;
  assert.deepEqual(pathProblems('prefix', at, MAX_PREFIX_BYTES), []);
  assert.match(pathProblems('prefix', `${at}b`, MAX_PREFIX_BYTES)[0]!.message, /is 484 bytes long/);
  assert.match(pathProblems('store dir', `/tmp/${'s'.repeat(256)}`)[0]!.message, /a name of 256 bytes/);
  assert.match(pathProblems('store dir', '/tmp/s;x')[0]!.hint, /--store-dir/);
});

test('a state file is read only in the shape every reader relies on; anything else says what is wrong', () => {
  assert.equal(stateShapeProblem({ version: 1, storeDir: '/tmp/nix/store', stages: {} }), undefined);
  for (const [s, said] of [
    [[], /not a JSON object/],
    [null, /not a JSON object/],
    [{ version: 2, storeDir: '/x', stages: {} }, /version 2; this relonix reads version 1/],
    [{ version: 1 }, /no absolute store dir/],
    [{ version: 1, storeDir: 'rel', stages: {} }, /no absolute store dir/],
    [{ version: 1, storeDir: '/x' }, /no record of stages/],
    [{ version: 1, storeDir: '/x', stages: [] }, /no record of stages/],
    [{ version: 1, storeDir: '/x', stages: {}, nix: 3 }, /active Nix is not a path/],
  ] as const) {
    assert.match(stateShapeProblem(s) ?? '', said, JSON.stringify(s));
  }
});

test('uninstall removes a store dir only when it holds nothing but what a store holds', () => {
  const sp = '0123456789abcdfghijklmnpqrsvwxyz-hello-2.12';
  assert.deepEqual(foreignStoreEntries([sp, `${sp}.lock`, `${sp}.drv`, '.links', '.relonix-x.1.ab.tmp']), []);
  assert.deepEqual(foreignStoreEntries([sp, 'thesis.tex', 'Documents', 'e-mail']), ['thesis.tex', 'Documents', 'e-mail']);
});

test("the profile's elements, as nix-env -q --out-path lists them", () => {
  assert.deepEqual(parseElements('nix-2.8.0  /p/store/aaa-nix-2.8.0\nhello-relonix-1.0  /p/store/bbb-hello-relonix-1.0\n\n'), [
    { name: 'nix-2.8.0', outPath: '/p/store/aaa-nix-2.8.0' },
    { name: 'hello-relonix-1.0', outPath: '/p/store/bbb-hello-relonix-1.0' },
  ]);
});

test('the generated scripts quote the prefix everywhere, comments included', () => {
  const l = layout("/tmp/it's here/nix");
  const { sh, fish } = envScripts(l, '/tmp/x/store/abc-nix');
  assert.equal(sh.split('\n')[0], `# relonix: the environment for the Nix in ${shQuote(l.prefix)}. Source it: . ${shQuote(l.envScript)}`);
  assert.match(fish.split('\n')[0]!, /in '\/tmp\/it\\'s here\/nix'\. Source it: source '/);
  assert.match(wrapperScript(l, '/tmp/x/store/abc-nix', 'nix-build').split('\n')[1]!, /of the Nix in '\/tmp\/it'\\''s here\/nix', with/);
});

test("the translator's script and the builders' files quote the prefix too: nothing in a path can end a comment or run as a command", () => {
  const l = layout('/tmp/$(touch pwned)/nix');
  const script = ensureScript(l, translatorFiles(l), '/usr/bin/node', '/opt/relonix.mjs');
  assert.equal(script.split('\n')[0], "# relonix: sourced by the bin/ wrappers of '/tmp/$(touch pwned)/nix'. While the command runs, the translator");
  assert.match(script, /printf 'relonix: warning: there is no node to start the translator of %s: .*\\n' '\/tmp\/\$\(touch pwned\)\/nix' >&2/);
  assert.doesNotMatch(script, /"[^"'\n]*\$\(touch/, 'never inside double quotes, where sh would run it');
  const nl = layout('/tmp/a\nb/nix');
  for (const text of [sshConfigText(nl, []), machinesText(nl, [])]) {
    assert.ok(
      text.split('\n').every((line) => line === '' || line.startsWith('#') || !line.includes('b/nix')),
      text,
    );
  }
});

test('a full disk is one sentence of kind preflight wherever it is noticed; system errors on a path are worded, others are not', () => {
  const e = noSpace('/tmp/nix', 3 * 2 ** 20, 200 * 2 ** 20);
  assert.equal(e.message, 'no space left on /tmp/nix: 3.0 MiB free, 200 MiB needed');
  assert.equal(e.kind, 'preflight');
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
  assert.ok(isNoSpace(enospc));
  assert.ok(isNoSpace(new RelonixError('wrapped', { cause: enospc })), 'through a cause chain');
  assert.equal(errnoWords(enospc), 'no space left on the device');
  const eacces = Object.assign(new Error("EACCES: permission denied, mkdir '/x/y'"), { code: 'EACCES', syscall: 'mkdir', path: '/x/y' });
  const worded = fromSystemError(eacces);
  assert.equal(worded?.message, 'cannot create /x/y: permission denied');
  assert.equal(worded?.kind, 'preflight');
  assert.equal(fromSystemError(new Error('plain')), undefined);
  assert.equal(fromSystemError(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), undefined);
});
