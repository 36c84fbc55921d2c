// The engine against hundreds of real x86_64 files from this host: one `relonix patchelf` call
// rewrites them all; Debian's readelf and patchelf must read back exactly what was set, with no
// warning; real programs must still start through the new, longer interpreter path.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { editElf, parseElf, readElf } from '../../src/elf/index.ts';

function isStaticPie(file: string): boolean {
  const e = parseElf(readFileSync(file), file);
  return e.interpIndex < 0 && e.dyn.some((d) => d.tag === 0x6ffffffb /* DT_FLAGS_1 */ && (d.val & 0x08000000) /* DF_1_PIE */ !== 0);
}

import { relonixPatchelf } from '../helpers/cli.ts';
import { assertPhdrInvariant, dynamicSymbols, elfFiles, LONG_RPATH, readelf } from '../helpers/elf.ts';
import { requireTool, run } from '../helpers/tools.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'relonix-elf-corpus-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// A long interpreter path that really resolves to the host's loader.
const ldDir = path.join(tmp, 'relonix-test-a-very-long-prefix-that-must-grow/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-2.40/lib');
const INTERP = path.join(ldDir, 'ld-linux-x86-64.so.2');
mkdirSync(ldDir, { recursive: true });
symlinkSync('/lib64/ld-linux-x86-64.so.2', INTERP);

const CORPUS_SIZE = 400;

test('a deterministic corpus of real ELF files reads back exactly through readelf and patchelf', () => {
  requireTool('readelf');
  requireTool('patchelf');
  requireTool('nm');
  const all = elfFiles(['/usr/bin', '/usr/lib/x86_64-linux-gnu']);
  assert.ok(all.length >= CORPUS_SIZE, `expected at least ${CORPUS_SIZE} ELF files on this host, found ${all.length}`);
  const stride = all.length / CORPUS_SIZE;
  const dir = path.join(tmp, 'corpus');
  mkdirSync(dir);
  const exe: string[] = [];
  const lib: string[] = [];
  const before = new Map<string, ReturnType<typeof readElf>>();
  const sources = new Map<string, string>();
  const notes = new Map<string, string[]>();
  for (let k = 0; k < CORPUS_SIZE; k++) {
    const src = all[Math.floor(k * stride)]!;
    const info = readElf(readFileSync(src), src);
    if (!info.hasDynamic) continue; // static programs have nothing to rewrite
    if (isStaticPie(src)) continue; // glibc aborts a static-pie program with a RUNPATH (elf-gcc tests the refusal)
    const dst = path.join(dir, `${k}-${path.basename(src)}`);
    copyFileSync(src, dst);
    before.set(dst, info);
    sources.set(dst, src);
    notes.set(dst, readelf(src).view.notes);
    (info.interpreter ? exe : lib).push(dst);
  }
  assert.ok(exe.length > 100 && lib.length > 100, `corpus too one-sided: ${exe.length} programs, ${lib.length} libraries`);

  let r = relonixPatchelf(['--set-interpreter', INTERP, '--set-rpath', LONG_RPATH, ...exe]);
  assert.equal(r.status, 0, r.stderr);
  r = relonixPatchelf(['--set-rpath', LONG_RPATH, ...lib]);
  assert.equal(r.status, 0, r.stderr);

  for (const f of [...exe, ...lib]) {
    const { view, stderr, status } = readelf(f);
    assert.equal(status, 0, `readelf failed on ${f}`);
    assert.equal(stderr, '', `readelf warns about ${f}`);
    assert.equal(view.runpath, LONG_RPATH, `${f}: RUNPATH`);
    assert.equal(view.rpath, undefined, `${f}: no DT_RPATH left beside DT_RUNPATH`);
    assert.deepEqual(view.needed, before.get(f)!.needed, `${f}: DT_NEEDED unchanged`);
    assert.deepEqual(view.notes, notes.get(f), `${f}: PT_NOTE segments (often covering several sections) unchanged`);
    const p = run('patchelf', exe.includes(f) ? ['--print-interpreter', '--print-rpath', f] : ['--print-rpath', f]);
    assert.equal(p.status, 0, `patchelf cannot read ${f}: ${p.stderr}`);
    assert.equal(p.stdout, exe.includes(f) ? `${INTERP}\n${LONG_RPATH}\n` : `${LONG_RPATH}\n`, f);
    if (exe.includes(f)) assert.equal(view.interpreter, INTERP, f);
    assertPhdrInvariant(f);
  }
  for (const f of lib) assert.equal(dynamicSymbols(f), dynamicSymbols(sources.get(f)!), `${f}: nm -D unchanged`);

  // The command writes in place from partial reads; the result is still exactly what the engine
  // computes from the whole original file.
  for (const f of [...exe.slice(0, 40), ...lib.slice(0, 40)]) {
    const want = editElf(readFileSync(sources.get(f)!), { interpreter: exe.includes(f) ? INTERP : undefined, rpath: LONG_RPATH }, f);
    assert.ok(want && readFileSync(f).equals(want), `${f}: written bytes differ from editElf's`);
  }

  // A second identical call is a no-op: not one byte changes.
  const snapshot = exe.slice(0, 20).map((f) => readFileSync(f));
  r = relonixPatchelf(['--set-interpreter', INTERP, '--set-rpath', LONG_RPATH, ...exe.slice(0, 20)]);
  assert.equal(r.status, 0, r.stderr);
  for (const [i, f] of exe.slice(0, 20).entries()) assert.ok(readFileSync(f).equals(snapshot[i]!), `${f} changed on a same-value edit`);
});

const PROGRAMS: Array<[string, string[]]> = [
  ['ls', ['--version']],
  ['bash', ['--version']],
  ['perl', ['-e', 'print "ok\\n"']],
  ['python3', ['-c', 'import ssl, json; print("ok")']],
  ['gcc', ['--version']],
  ['git', ['--version']],
  ['node', ['-e', 'console.log("ok")']],
  ['nix', ['--version']],
  ['nix-store', ['--version']],
  ['readelf', ['--version']],
  ['tar', ['--version']],
  ['xz', ['--version']],
  ['sort', ['--version']],
  ['nginx', ['-v']],
  ['patchelf', ['--version']],
  ['setpriv', ['--version']],
];

test('real programs still run through the rewritten, longer interpreter and RUNPATH', () => {
  const dir = path.join(tmp, 'run');
  mkdirSync(dir);
  let ran = 0;
  for (const [name, args] of PROGRAMS) {
    const src = ['/usr/bin', '/usr/sbin']
      .map((d) => path.join(d, name))
      .find((p) => {
        try {
          return readElf(readFileSync(p), p).interpreter !== undefined;
        } catch {
          return false;
        }
      });
    if (!src) continue;
    const info = readElf(readFileSync(src), src);
    const dst = path.join(dir, name);
    copyFileSync(src, dst);
    const rpath = [LONG_RPATH, info.runpath ?? info.rpath].filter(Boolean).join(':');
    const r = relonixPatchelf(['--set-interpreter', INTERP, '--set-rpath', rpath, dst]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readElf(readFileSync(dst)).interpreter, INTERP);
    const out = run(dst, args);
    assert.equal(out.status, 0, `${name} ${args.join(' ')} failed after rewriting: ${out.stderr}`);
    ran++;
  }
  assert.ok(ran >= 10, `only ${ran} of the listed programs exist here`);

  // The new interpreter path is really the one used: without it the program cannot start.
  unlinkSync(INTERP);
  try {
    assert.throws(() => run(path.join(dir, 'ls'), ['--version']), /ENOENT/);
  } finally {
    symlinkSync('/lib64/ld-linux-x86-64.so.2', INTERP);
  }
});
