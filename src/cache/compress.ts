// NAR compression. xz is what Nix writes by default. Decompression uses the host's `xz` when it is
// there (fast, native) and the WebAssembly decoder otherwise, so no host tool is required to restore.
// There is no pure-JavaScript xz encoder among the dependencies, so publishing without a host `xz`
// falls back to uncompressed NARs (Compression: none), which every Nix reads.
import { spawn } from 'node:child_process';
import { accessSync, constants as C } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import xzDecompress from 'xz-decompress';

// a CommonJS package: its classes come off the default export
const { XzReadableStream } = xzDecompress;

export type Compression = 'xz' | 'none';

let xzPath: string | null | undefined;

/** The host's xz, or null. RELONIX_NO_HOST_XZ=1 hides it (tests of the pure path). */
export function hostXz(): string | null {
  if (process.env.RELONIX_NO_HOST_XZ === '1') return null;
  if (xzPath !== undefined) return xzPath;
  xzPath = null;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, 'xz');
    try {
      accessSync(p, C.X_OK);
      xzPath = p;
      break;
    } catch {
      // not here
    }
  }
  return xzPath;
}

export function narExtension(c: string): string {
  return c === 'xz' ? '.nar.xz' : '.nar';
}

export function checkCompression(c: string): Compression {
  if (c === 'xz' || c === 'none') return c;
  throw new Error(`NAR compression "${c}" is not supported by relonix (it reads and writes xz and none)`);
}

/** Compresses a NAR held in memory. */
export async function compress(data: Buffer[], c: Compression): Promise<Buffer> {
  if (c === 'none') return Buffer.concat(data);
  const xz = hostXz();
  if (!xz) throw new Error('xz compression needs the host xz');
  return new Promise((resolve, reject) => {
    const child = spawn(xz, ['-c', '-q', '-T1', '-6'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`xz exited with ${code}: ${Buffer.concat(err).toString().trim()}`));
    });
    (async () => {
      for (const b of data) if (!child.stdin.write(b)) await new Promise((r) => child.stdin.once('drain', r));
      child.stdin.end();
    })().catch(reject);
  });
}

/** Decompresses a stream of compressed bytes. */
export function decompress(src: AsyncIterable<Uint8Array>, c: string): AsyncIterable<Uint8Array> {
  if (c === 'none') return src;
  if (c !== 'xz') throw new Error(`NAR compression "${c}" is not supported by relonix (it reads xz and none)`);
  const xz = hostXz();
  if (!xz) {
    const web = new XzReadableStream(Readable.toWeb(Readable.from(src)) as ReadableStream<Uint8Array>);
    return Readable.fromWeb(web as import('node:stream/web').ReadableStream<Uint8Array>);
  }
  return hostDecompress(xz, src);
}

async function* hostDecompress(xz: string, src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const child = spawn(xz, ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  child.stdin.on('error', () => undefined);
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const b of src) if (!child.stdin.write(b)) await new Promise((r) => child.stdin.once('drain', r));
    } catch (e) {
      feedError = e;
    } finally {
      child.stdin.end();
    }
  })();
  try {
    for await (const b of child.stdout) yield b as Buffer;
    await feeding;
    if (feedError) throw feedError;
    const code = await exited;
    if (code !== 0) throw new Error(`the xz stream is corrupt: ${Buffer.concat(err).toString().trim() || `xz exited with ${code}`}`);
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
