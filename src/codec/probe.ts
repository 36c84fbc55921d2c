// Whether the host's xz and zstd work here: each is given a stream of a few hundred bytes whose text
// is known, with the options relonix passes it, as a program that is there but broken (a library it
// cannot load, an option it refuses) fails on any stream. Decoding, for relonix doctor; encoding,
// before a publish picks a compression.
import { Readable } from 'node:stream';
import { errorMessage } from '../util/errors.ts';
import { pipeThrough, runTool } from '../util/spawn.ts';
import { CodecError } from './error.ts';
import { encoderArgs, type HostTool, hiddenTool, hostTool } from './host-tools.ts';
import { decompressXz } from './xz.ts';
import { pureZstd } from './zstd.ts';

export interface DecoderFacts {
  /** the program relonix would take, or null (none on PATH, or hidden) */
  program: string | null;
  /** hidden by RELONIX_NO_HOST_XZ=1 or RELONIX_NO_HOST_ZSTD=1 */
  hidden: boolean;
  /** whether it decoded the sample to its text */
  works?: boolean;
  /** the first line it printed when it did not */
  printed?: string;
  /** it had not finished when its time was up (and was killed) */
  hung?: boolean;
}

const SAMPLES: Record<HostTool, { args: string[]; stream: string; text: string }> = {
  xz: {
    // the bootstrap passes -T; an xz that refuses it fails every unpack
    args: ['-d', '-c', '-q', '-T1'],
    // `xz -6` of the line twenty times over
    stream:
      '/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4AUnAEtdADkZSdvKbTqQxnKTG8YDTjRPL4ydApRDdxet7uRg+7oVtfX17M+vq/y7Fc7IuepVRBcuG73p+l2xCjrvKNJOhq2D1boSZYRsQuFUAAAAHEdgRC2Hm68AAWeoCgAAAAzfTvmxxGf7AgAAAAAEWVo=',
    text: 'relonix reads xz in WebAssembly where the host has no xz program.\n'.repeat(20),
  },
  zstd: {
    args: ['-d', '-c', '-q'],
    // `zstd` of the line twenty times over
    stream: 'KLUv/QRYXQIA9ANyZWxvbml4IHJlYWRzIHpzdGQgaW4gSmF2YVNjcmlwdCB3aGVyZSB0aGUgaG9zdCBoYXMgbm9wcm9ncmFtLgoCABwh4R9jmIICtNDIUg==',
    text: 'relonix reads zstd in JavaScript where the host has no zstd program.\n'.repeat(20),
  },
};

/**
 * How long a program may take over the sample. A few hundred bytes take it milliseconds, but a
 * program can hang (a wrapper waiting on a network filesystem, a lock): a publish must not wait on
 * it forever, nor the host's slowest start count as a failure.
 */
const SAMPLE_MS = 20_000;

export async function probeHostDecoder(name: HostTool, withinMs = SAMPLE_MS): Promise<DecoderFacts> {
  const program = hostTool(name);
  const hidden = hiddenTool(name);
  if (!program) return { program, hidden };
  const s = SAMPLES[name];
  const signal = AbortSignal.timeout(withinMs);
  try {
    const r = await runTool(program, s.args, process.env, Readable.from([Buffer.from(s.stream, 'base64')]), signal);
    if (r.code === 0 && r.stdout === s.text) return { program, hidden, works: true };
    const printed = r.stderr.trim().split('\n')[0]?.trim();
    return {
      program,
      hidden,
      works: false,
      printed: printed || (r.code === 0 ? 'it put out other bytes than the stream holds' : `it exited with ${r.code ?? r.signal}`),
    };
  } catch (e) {
    if (signal.aborted) return { program, hidden, works: false, hung: true, printed: `it did not finish decoding the sample within ${withinMs / 1000} s` };
    return { program, hidden, works: false, printed: errorMessage(e) };
  }
}

const encoders = new Map<string, Promise<string | undefined>>();

/**
 * Why the host's `name` at `bin` cannot compress here (the first line it printed, or what is wrong
 * with what it put out), or undefined when it can: the sample's text, compressed at `level` with the
 * options relonix compresses with, must decode in relonix's own decoder to that text. Asked once per
 * program and level.
 */
export function encoderFailure(name: HostTool, bin: string, level: number, withinMs = SAMPLE_MS): Promise<string | undefined> {
  const key = `${bin}\0${level}`;
  let p = encoders.get(key);
  if (!p) {
    p = compressesHere(name, bin, level, withinMs);
    encoders.set(key, p);
  }
  return p;
}

async function compressesHere(name: HostTool, bin: string, level: number, withinMs: number): Promise<string | undefined> {
  const text = Buffer.from(SAMPLES[name].text);
  const signal = AbortSignal.timeout(withinMs);
  try {
    const packed = await gather(pipeThrough(bin, encoderArgs(level), one(text), (detail) => new CodecError(detail), signal));
    const back = await gather(name === 'xz' ? decompressXz(one(packed), { noHost: true }) : pureZstd(one(packed))).catch(() => undefined);
    return back?.equals(text) ? undefined : `what it put out does not decode to what it was given`;
  } catch (e) {
    return signal.aborted ? `it did not finish compressing ${text.length} bytes within ${withinMs / 1000} s` : errorMessage(e);
  }
}

async function* one(b: Buffer): AsyncGenerator<Uint8Array> {
  yield b;
}

async function gather(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of src) out.push(Buffer.from(b));
  return Buffer.concat(out);
}
