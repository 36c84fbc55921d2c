// The shape src/ keeps: folders and files that depend one way, imports at the top, files a reader
// can hold, functions that fit on a screen. Broken by an edit, it fails here, naming the place,
// rather than in a later review.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { SRC, sources } from '../helpers/sources.ts';

const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

/** The folder of src/ a file is in; files at the top (cli.ts) are not a folder. */
function folderOf(file: string): string | undefined {
  const parts = path.relative(SRC, file).split(path.sep);
  return parts.length > 1 ? parts[0] : undefined;
}

function folderEdges(files: string[]): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  for (const file of files) {
    const from = folderOf(file);
    if (!from) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
      const to = folderOf(path.resolve(path.dirname(file), m[1]!));
      if (to && to !== from) (edges.get(from) ?? edges.set(from, new Set()).get(from)!).add(to);
    }
  }
  return edges;
}

function reaches(edges: Map<string, Set<string>>, start: string, goal: string): boolean {
  const seen = new Set([start]);
  const todo = [start];
  while (todo.length) {
    const at = todo.pop()!;
    if (at === goal) return true;
    for (const next of edges.get(at) ?? []) {
      if (seen.has(next)) continue;
      seen.add(next);
      todo.push(next);
    }
  }
  return false;
}

test('no folder of src/ imports one that imports it back, directly or through others', () => {
  const edges = folderEdges(sources(SRC));
  assert.ok(edges.size >= 8, `the import scan found the folders (${[...edges.keys()].join(' ')})`);
  const cycles = [...edges].flatMap(([from, tos]) => [...tos].filter((to) => reaches(edges, to, from)).map((to) => `${from} -> ${to}`));
  assert.deepEqual(cycles, []);
});

test(`no source file over ${MAX_FILE_LINES} lines and no function over ${MAX_FUNCTION_LINES}`, () => {
  const tooLong: string[] = [];
  let functions = 0;
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const name = path.relative(SRC, file);
    const lines = text.split('\n').length;
    if (lines > MAX_FILE_LINES) tooLong.push(`${name}: ${lines} lines`);
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        functions++;
        const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const last = sf.getLineAndCharacterOfPosition(node.end).line;
        if (last - first + 1 > MAX_FUNCTION_LINES) tooLong.push(`${name}:${first + 1}: a function of ${last - first + 1} lines`);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  assert.ok(functions > 500, `the scan saw the functions (${functions})`);
  assert.deepEqual(tooLong, []);
});

/** Every relative module a file imports (static, type-only, re-exported or dynamic), resolved. */
function importsOf(file: string, sf: ts.SourceFile): string[] {
  const out: string[] = [];
  const add = (spec: ts.Expression | undefined): void => {
    if (spec && ts.isStringLiteral(spec) && spec.text.startsWith('.')) out.push(path.resolve(path.dirname(file), spec.text));
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The strongly connected components of more than one file (Tarjan), each sorted: the import cycles. */
function cyclesOf(edges: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      scc.push(w);
      if (w === v) break;
    }
    if (scc.length > 1) out.push(scc.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) connect(v);
  return out;
}

test('no file of src/ imports one that imports it back, and every import comes before the code', () => {
  const edges = new Map<string, string[]>();
  const late: string[] = [];
  for (const file of sources(SRC)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const name = path.relative(SRC, file);
    edges.set(
      name,
      importsOf(file, sf).map((to) => path.relative(SRC, to)),
    );
    const firstCode = sf.statements.findIndex((st) => !ts.isImportDeclaration(st));
    const lateImport = sf.statements.find((st, i) => i > firstCode && firstCode >= 0 && ts.isImportDeclaration(st));
    if (lateImport) late.push(`${name}:${sf.getLineAndCharacterOfPosition(lateImport.getStart(sf)).line + 1}: an import after code`);
  }
  assert.ok([...edges.values()].flat().length > 300, 'the scan saw the imports');
  assert.deepEqual(
    cyclesOf(edges).map((c) => c.join(' <-> ')),
    [],
  );
  assert.deepEqual(late, []);
});
