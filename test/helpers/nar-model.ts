// NARs built from a plain tree, and what a rewrite of one must give, computed the simple way (whole
// strings, replaced and sorted): the oracle the streaming rewriter is checked against.
import { narString } from '../../src/store/nar/framing.ts';

export type Tree =
  | { type: 'regular'; contents: Buffer; executable?: boolean }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, Tree> };

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));

function* tokens(t: Tree): Generator<Buffer> {
  yield narString('(');
  yield narString('type');
  if (t.type === 'regular') {
    yield narString('regular');
    if (t.executable) yield Buffer.concat([narString('executable'), narString('')]);
    yield narString('contents');
    yield narString(t.contents);
  } else if (t.type === 'symlink') {
    yield Buffer.concat([narString('symlink'), narString('target'), narString(Buffer.from(t.target, 'latin1'))]);
  } else {
    yield narString('directory');
    for (const name of Object.keys(t.entries).sort(byBytes)) {
      yield Buffer.concat([narString('entry'), narString('('), narString('name'), narString(Buffer.from(name, 'latin1')), narString('node')]);
      yield* tokens(t.entries[name]!);
      yield narString(')');
    }
  }
  yield narString(')');
}

/** The NAR of a tree, entries sorted as Nix sorts them. */
export function nar(t: Tree): Buffer {
  return Buffer.concat([narString('nix-archive-1'), ...tokens(t)]);
}

export interface Mapping {
  from: string;
  to: string;
  hashes: Map<string, string>;
}

/** Every mapped hash part, then the store dir, replaced in a whole latin1 string. */
export function replaced(s: string, m: Mapping): string {
  if (m.hashes.size) s = s.replace(new RegExp([...m.hashes.keys()].join('|'), 'g'), (h) => m.hashes.get(h)!);
  return s.split(m.from).join(m.to);
}

/** The tree a rewrite must give: contents, targets and names replaced. */
export function rewritten(t: Tree, m: Mapping): Tree {
  if (t.type === 'regular') return { ...t, contents: Buffer.from(replaced(t.contents.toString('latin1'), m), 'latin1') };
  if (t.type === 'symlink') return { type: 'symlink', target: replaced(t.target, m) };
  return { type: 'directory', entries: Object.fromEntries(Object.entries(t.entries).map(([k, v]) => [replaced(k, m), rewritten(v, m)])) };
}

/** Splits `b` into chunks at the given offsets. */
export function* chunked(b: Buffer, cuts: number[]): Generator<Buffer> {
  let from = 0;
  for (const c of [...cuts, b.length]) {
    yield b.subarray(from, c);
    from = c;
  }
}

export async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return Buffer.concat(out);
}

/** A hash part made of one repeated character (distinct, valid, easy to order). */
export const hashOf = (c: string) => c.repeat(32);

export interface PatternFile {
  name: string;
  size: number;
  /** the contents: this, repeated, cut at `size` */
  pattern: Buffer;
}

/** The NAR of a directory of big files, generated as it is read: nothing is ever whole in memory. */
export async function* streamNar(files: PatternFile[], chunk = 1 << 16): AsyncGenerator<Buffer> {
  yield Buffer.concat(['nix-archive-1', '(', 'type', 'directory'].map((s) => narString(s)));
  for (const f of [...files].sort((a, b) => byBytes(a.name, b.name))) {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(f.size));
    yield Buffer.concat([...['entry', '(', 'name', f.name, 'node', '(', 'type', 'regular', 'contents'].map((s) => narString(s)), len]);
    const L = f.pattern.length;
    const big = Buffer.concat(Array.from({ length: Math.ceil((chunk + L) / L) }, () => f.pattern));
    for (let o = 0; o < f.size; o += chunk) yield big.subarray(o % L, (o % L) + Math.min(chunk, f.size - o));
    yield Buffer.concat([Buffer.alloc((8 - (f.size % 8)) % 8), narString(')'), narString(')')]);
  }
  yield narString(')');
}
