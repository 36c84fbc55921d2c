// No plain Error reaches the user: a refusal is a RelonixError from a named constructor (see
// conditions.test.ts), and a parser or decoder throws its layer's own type (CodecError,
// NarInfoError, FileContentError …) for the layer that took the input to word. The files below may
// still build a plain Error, each for the reason given; any other `new Error(` in src/ fails here,
// and so does an entry whose file no longer needs it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { SRC, sources } from '../helpers/sources.ts';

/** file (under src/) → why it may build a plain Error. */
const ALLOWED: Record<string, string> = {
  'bundle/launcher.ts': 'internal error: the launcher outgrew the bytes reserved for it',
  'bundle/rewrite.ts': 'internal error: an in-place rewrite is only asked for with equal lengths',
  'cache/key-files.ts': 'internal error: a name generateKey accepted cannot leave the key directory',
  'cache/staged-nar.ts': 'internal error: a NAR whose maker said it would hash it ended without a hash',
  'codec/xz.ts': 'internal error: compressing is only asked for where the host has xz',
  'codec/zstd.ts': 'internal error: compressing is only asked for where the host has zstd',
  'elf/source.ts': 'an errno-shaped EIO, as a failed read(2) gives it, for the callers that word errnos',
  'translate/item.ts': 'internal error: a rewrite that ended without its summary',
  'translate/modulo.ts': 'internal error: an unreachable derivation form',
  'translate/rewrite.ts': 'internal error: the rewritten NAR is not the size just counted',
  'translate/spool.ts': 'internal error: a spool read outside what was spooled',
  'util/fs.ts': 'fsError: an errno-shaped error as fs itself throws it, worded by fromSystemError',
  'worker.ts': 'internal error: a worker thread started for a job relonix does not have',
};

/** `file:line` of every `new Error(…)` in src/. */
function plainErrors(): string[] {
  const out: string[] = [];
  for (const file of sources(SRC)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'Error') {
        out.push(`${path.relative(SRC, file)}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out;
}

test('no plain Error in src/ outside the files allowed one, and no allowance left over', () => {
  const found = plainErrors();
  assert.ok(found.length > 0, 'the scan finds the plain Errors that are allowed');
  const fileOf = (at: string) => at.slice(0, at.lastIndexOf(':'));
  assert.deepEqual(
    found.filter((at) => !(fileOf(at) in ALLOWED)),
    [],
    'throw a RelonixError from a named constructor, or the layer’s own error type; or add the file here with why',
  );
  const used = new Set(found.map(fileOf));
  assert.deepEqual(
    Object.keys(ALLOWED).filter((f) => !used.has(f)),
    [],
    'these files build no plain Error any more: drop them from ALLOWED',
  );
  for (const [file, why] of Object.entries(ALLOWED)) assert.ok(why.length > 20, `${file} says why`);
});
