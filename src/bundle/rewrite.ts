// A file's bytes with every reference to the store dir replaced by the run dir, in place (the two are
// of one length, so no byte moves: binaries stay valid), noting where each one was. The same rule as
// relocation (store/relocate-text.ts): a store dir followed by '/' or by a byte that cannot go on a
// path, so `/tmp/nix/s` in `/tmp/nix/share` stays.
import { findStoreRefs } from '../store/relocate-text.ts';

/**
 * Rewrites a stream of chunks; `offsets` receives the offset of every replacement. A reference may
 * straddle chunks: a window's last bytes wait for the next chunk until the byte after them is known.
 */
export async function* rewriteStoreDir(chunks: AsyncIterable<Buffer>, from: string, to: string, offsets: number[]): AsyncGenerator<Buffer> {
  const target = Buffer.from(to);
  const len = target.length;
  if (Buffer.byteLength(from) !== len) throw new Error(`internal error: ${from} and ${to} differ in length: a reference cannot be replaced in place`);
  let pending = Buffer.alloc(0);
  let base = 0;
  const replace = (buf: Buffer, final: boolean): number => {
    // a match is decided once the byte after it is in the window (or the file has ended)
    const decided = final ? buf.length : buf.length - len;
    let end = 0;
    for (const at of findStoreRefs(buf, from, true)) {
      if (at >= decided) break;
      target.copy(buf, at);
      offsets.push(base + at);
      end = at + len;
    }
    return Math.max(end, Math.min(decided, buf.length), 0);
  };
  for await (const chunk of chunks) {
    const buf = pending.length ? Buffer.concat([pending, chunk]) : Buffer.from(chunk);
    const cut = replace(buf, false);
    if (cut > 0) yield buf.subarray(0, cut);
    pending = buf.subarray(cut);
    base += cut;
  }
  if (pending.length) {
    replace(pending, true);
    yield pending;
  }
}
