// Whether the host's xz and zstd decode here, for relonix doctor: each is given a stream of a few
// hundred bytes whose text is known, with the options relonix passes it, as a program that is
// there but broken (a library it cannot load, an option it refuses) fails on any stream.
import { Readable } from 'node:stream';
import { errorMessage } from '../util/errors.ts';
import { runTool } from '../util/spawn.ts';
import { type HostTool, hiddenTool, hostTool } from './host-tools.ts';

export interface DecoderFacts {
  /** the program relonix would take, or null (none on PATH, or hidden) */
  program: string | null;
  /** hidden by RELONIX_NO_HOST_XZ=1 or RELONIX_NO_HOST_ZSTD=1 */
  hidden: boolean;
  /** whether it decoded the sample to its text */
  works?: boolean;
  /** the first line it printed when it did not */
  printed?: string;
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

export async function probeHostDecoder(name: HostTool): Promise<DecoderFacts> {
  const program = hostTool(name);
  const hidden = hiddenTool(name);
  if (!program) return { program, hidden };
  const s = SAMPLES[name];
  try {
    const r = await runTool(program, s.args, process.env, Readable.from([Buffer.from(s.stream, 'base64')]));
    if (r.code === 0 && r.stdout === s.text) return { program, hidden, works: true };
    const printed = r.stderr.trim().split('\n')[0]?.trim();
    return {
      program,
      hidden,
      works: false,
      printed: printed || (r.code === 0 ? 'it put out other bytes than the stream holds' : `it exited with ${r.code ?? r.signal}`),
    };
  } catch (e) {
    return { program, hidden, works: false, printed: errorMessage(e) };
  }
}
