// A host xz or zstd that is there but does not work (a library it cannot load, an option it
// refuses) is no reason to fail: the built-in decoder reads the stream instead, the program is
// passed over from then on, and the user is told once. A stream both refuse is corrupt, and a
// failure after the program put out bytes, or of the source itself, is reported as it is.
// One that hangs over the few hundred bytes relonix tries it with is killed, and said so.
import assert from 'node:assert/strict';
import { existsSync, promises as fs, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CodecError } from '../../src/codec/error.ts';
import { hostTool } from '../../src/codec/host-tools.ts';
import { encoderFailure, probeHostDecoder } from '../../src/codec/probe.ts';
import { decompressXz } from '../../src/codec/xz.ts';
import { decompressZstd } from '../../src/codec/zstd.ts';
import { requireTool } from '../helpers/tools.ts';
import { waitUntil } from '../helpers/wait.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'relonix-host-filter-'));
after(() => fs.rm(dir, { recursive: true, force: true }));

const XZ_LINE = 'relonix reads xz in WebAssembly where the host has no xz program.\n';
// `xz -6` of XZ_LINE twenty times over
const XZ = Buffer.from(
  '/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4AUnAEtdADkZSdvKbTqQxnKTG8YDTjRPL4ydApRDdxet7uRg+7oVtfX17M+vq/y7Fc7IuepVRBcuG73p+l2xCjrvKNJOhq2D1boSZYRsQuFUAAAAHEdgRC2Hm68AAWeoCgAAAAzfTvmxxGf7AgAAAAAEWVo=',
  'base64',
);
const ZSTD_LINE = 'relonix reads zstd in JavaScript where the host has no zstd program.\n';
// `zstd` of ZSTD_LINE twenty times over
const ZSTD = Buffer.from('KLUv/QRYXQIA9ANyZWxvbml4IHJlYWRzIHpzdGQgaW4gSmF2YVNjcmlwdCB3aGVyZSB0aGUgaG9zdCBoYXMgbm9wcm9ncmFtLgoCABwh4R9jmIICtNDIUg==', 'base64');

/** A folder holding a program `name` with this shell body, made for one test. */
async function program(name: string, body: string): Promise<string> {
  const d = await fs.mkdtemp(path.join(dir, `${name}-`));
  await fs.writeFile(path.join(d, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return d;
}

/** The input in chunks of `size`, each handed out once, then `fail` thrown if given. */
async function* chunks(b: Buffer, size: number, fail?: Error): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
  if (fail) throw fail;
}

type Decode = (src: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>;

/** Decodes with PATH set to `pathVar` while the decoder is picked, and what it wrote to stderr. */
async function decode(pathVar: string, decoder: Decode, src: AsyncIterable<Uint8Array>): Promise<{ text?: string; error?: unknown; stderr: string }> {
  const saved = process.env.PATH;
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    process.env.PATH = pathVar;
    const decoded = decoder(src);
    process.env.PATH = saved;
    const out: Buffer[] = [];
    for await (const c of decoded) out.push(Buffer.from(c));
    return { text: Buffer.concat(out).toString(), stderr };
  } catch (error) {
    return { error, stderr };
  } finally {
    process.env.PATH = saved;
    process.stderr.write = write;
  }
}

function toolOn(pathVar: string, name: 'xz' | 'zstd'): string | null {
  const saved = process.env.PATH;
  process.env.PATH = pathVar;
  try {
    return hostTool(name);
  } finally {
    process.env.PATH = saved;
  }
}

test('an xz that fails before its first byte: the WebAssembly decoder reads the stream, and the program is passed over and named once', async () => {
  const bin = await program('xz', "echo 'xz: error while loading shared libraries: liblzma.so.5: cannot open shared object file' >&2\nexit 127");
  const xz = path.join(bin, 'xz');
  assert.equal(toolOn(bin, 'xz'), xz);
  // fed in small chunks: the program is gone before most of them, which the fallback still reads
  const r = await decode(bin, (s) => decompressXz(s), chunks(XZ, 7));
  assert.equal(r.error, undefined);
  assert.equal(r.text, XZ_LINE.repeat(20));
  assert.match(r.stderr, /the host's xz \(.*\/xz\) does not work here \(xz: error while loading shared libraries: liblzma\.so\.5/);
  assert.match(r.stderr, /repair it or take it off PATH/);
  assert.equal(toolOn(bin, 'xz'), null, 'passed over from then on');
  // the next stream goes to the WebAssembly decoder at once, and nothing more is said
  const again = await decode(bin, (s) => decompressXz(s), chunks(XZ, 64));
  assert.equal(again.text, XZ_LINE.repeat(20));
  assert.equal(again.stderr, '');
});

test('a zstd that cannot start (not a program it can run): the JavaScript decoder reads the stream', async () => {
  const bin = await fs.mkdtemp(path.join(dir, 'zstd-'));
  // executable, but no format the kernel runs: spawning it fails
  await fs.writeFile(path.join(bin, 'zstd'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0]), { mode: 0o755 });
  const r = await decode(bin, decompressZstd, chunks(ZSTD, 5));
  assert.equal(r.error, undefined);
  assert.equal(r.text, ZSTD_LINE.repeat(20));
  assert.match(r.stderr, /the host's zstd \(.*\/zstd\) does not work here/);
  assert.equal(toolOn(bin, 'zstd'), null);
});

test('a corrupt stream is refused by both decoders: a corrupt-stream error, and the working xz stays in use', async () => {
  const xz = requireTool('xz', 'xz-utils');
  const bin = path.dirname(xz);
  const bad = Buffer.from(XZ);
  bad[40] = bad[40]! ^ 0xff;
  const r = await decode(bin, (s) => decompressXz(s), chunks(bad, 16));
  assert.ok(r.error instanceof CodecError, String(r.error));
  assert.match((r.error as Error).message, /the xz stream is corrupt/);
  assert.equal(r.stderr, '', 'a working xz is not called broken');
  assert.equal(toolOn(bin, 'xz'), xz);
});

test('a program that fails after its first bytes is reported, not retried; a failing source is the error, whoever decodes', async () => {
  const midway = await program('xz', "printf 'partial'\necho 'xz: (stdin): Unexpected end of input' >&2\nexit 1");
  const r = await decode(midway, (s) => decompressXz(s), chunks(XZ, 16));
  assert.ok(r.error instanceof CodecError);
  assert.match((r.error as Error).message, /the xz stream is corrupt: xz: \(stdin\): Unexpected end of input/);
  assert.equal(r.stderr, '');
  assert.equal(toolOn(midway, 'xz'), path.join(midway, 'xz'), 'not passed over');

  const lost = new Error('the connection was reset');
  const xz = requireTool('xz', 'xz-utils');
  const viaHost = await decode(path.dirname(xz), (s) => decompressXz(s), chunks(XZ.subarray(0, 60), 16, lost));
  assert.equal(viaHost.error, lost);
  const failing = await program('xz', 'cat >/dev/null\nexit 1');
  const viaFailing = await decode(failing, (s) => decompressXz(s), chunks(XZ.subarray(0, 60), 16, lost));
  assert.equal(viaFailing.error, lost, 'the source error, not a fallback on what was read before it');
  assert.equal(toolOn(failing, 'xz'), path.join(failing, 'xz'));
});

/** Whether process `pid` has ended (a zombie has: only its exit status is left). */
function ended(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

// by its path: the probes below run with PATH set to the fake programs' dir alone
const SLEEP = ['/usr/bin/sleep', '/bin/sleep'].find((p) => existsSync(p)) ?? assert.fail('this test needs sleep in /usr/bin or /bin');

test('a host compressor that hangs over the sample is a failure, said with how long it was given, and is killed', async () => {
  const bin = path.join(dir, 'hangs-bin');
  await fs.mkdir(bin);
  const pids = path.join(dir, 'hangs.pid');
  await fs.writeFile(path.join(bin, 'zstd'), `#!/bin/sh\necho $$ > '${pids}'\nexec ${SLEEP} 600\n`, { mode: 0o755 });
  const why = await encoderFailure('zstd', path.join(bin, 'zstd'), 19, 300);
  assert.match(why ?? '', /^it did not finish compressing \d+ bytes within 0\.3 s$/);
  const pid = Number(await fs.readFile(pids, 'utf8'));
  await waitUntil(`the hanging zstd (pid ${pid}) was killed`, () => ended(pid), { ms: 5000 });
  // relonix doctor's decoding sample, likewise
  const saved = process.env.PATH;
  process.env.PATH = bin;
  const decoding = await probeHostDecoder('zstd', 300).finally(() => (process.env.PATH = saved));
  assert.deepEqual(decoding, {
    program: path.join(bin, 'zstd'),
    hidden: false,
    works: false,
    hung: true,
    printed: 'it did not finish decoding the sample within 0.3 s',
  });
  const decoder = Number(await fs.readFile(pids, 'utf8'));
  assert.notEqual(decoder, pid);
  await waitUntil(`the hanging decoder (pid ${decoder}) was killed`, () => ended(decoder), { ms: 5000 });

  // a wrapper whose own child hangs, holding the output after the wrapper is killed: not waited for
  await fs.writeFile(path.join(bin, 'xz'), `#!/bin/sh\n${SLEEP} 60 &\necho $! > '${pids}'\nwait\n`, { mode: 0o755 });
  const started = Date.now();
  const wrapped = await encoderFailure('xz', path.join(bin, 'xz'), 9, 300);
  assert.match(wrapped ?? '', /within 0\.3 s$/);
  assert.ok(Date.now() - started < 30_000, 'the sample ended well before the wrapper’s child (60 s)');
  process.kill(Number(await fs.readFile(pids, 'utf8')), 'SIGKILL');
});
