// A host program (xz, zstd) decoding a stream, with the built-in decoder behind it. A program that
// is there but broken (a library it cannot load, an option it refuses, a wrapper that fails) fails
// before it puts out a byte, while what it was fed is still at hand: the built-in decoder then reads
// the stream from its start. When that decoder refuses the stream too, the stream is what is corrupt,
// and its error says so; when it reads it, the program is passed over from then on.
import { errorMessage } from '../util/errors.ts';
import { pipeThrough } from '../util/spawn.ts';
import { type HostTool, markBroken } from './host-tools.ts';

/** The most input kept while the program has put out nothing; past it, a failure is only reported. */
const HOLD_BYTES = 16 << 20;

type Decoder = (src: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>;

export async function* hostDecode(
  tool: HostTool,
  bin: string,
  args: string[],
  src: AsyncIterable<Uint8Array>,
  builtIn: Decoder,
  failure: (detail: string) => Error,
): AsyncGenerator<Uint8Array> {
  const it = src[Symbol.asyncIterator]();
  let held: Uint8Array[] | undefined = [];
  let heldBytes = 0;
  let done = false;
  let sourceError: { e: unknown } | undefined;
  const next = async () => {
    try {
      const r = await it.next();
      done = !!r.done;
      return r;
    } catch (e) {
      sourceError = { e };
      done = true;
      throw e;
    }
  };
  // the program's input: pulled from `it` without ending it when the program stops reading, so the
  // built-in decoder can read on
  async function* fed(): AsyncGenerator<Uint8Array> {
    for (let r = await next(); !r.done; r = await next()) {
      if (held) {
        held.push(r.value);
        heldBytes += r.value.length;
        if (heldBytes > HOLD_BYTES) held = undefined;
      }
      yield r.value;
    }
  }
  // what the program printed when it failed, for the note that it is passed over
  let printed: string | undefined;
  const failed = (detail: string) => {
    printed = detail;
    return failure(detail);
  };
  try {
    try {
      for await (const b of pipeThrough(bin, args, fed(), failed)) {
        held = undefined;
        yield b;
      }
      return;
    } catch (e) {
      if (sourceError) throw sourceError.e;
      if (!held) throw e;
      printed ??= errorMessage(e);
    }
    const again = held;
    held = undefined;
    async function* whole(): AsyncGenerator<Uint8Array> {
      yield* again;
      for (let r = done ? undefined : await next(); r && !r.done; r = await next()) yield r.value;
    }
    yield* builtIn(whole());
    markBroken(tool, bin, printed);
  } finally {
    // not waited for: a source stalled on the network would hold the caller here
    if (!done) it.return?.()?.catch(() => undefined);
  }
}
