// Reading NARs: a NAR streamed into a directory tree, checked as Nix's parser checks it (known
// tokens only, zero padding, entry names without `/`, `.` or `..`, strictly sorted and unique) and
// hashed byte for byte, so the caller can compare NarHash and NarSize before the tree is moved into
// the store. Bad input is a NarFormatError, which the caller turns into its own error.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MAX_TARGET, MAX_TOKEN, NarFormatError, ZEROS, padLength } from './framing.ts';

export interface UnpackResult {
  /** raw sha256 of the NAR */
  hash: Buffer;
  size: number;
}

class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private readonly it: AsyncIterator<Uint8Array>;
  readonly hash = createHash('sha256');
  size = 0;

  constructor(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.it =
      Symbol.asyncIterator in src
        ? (src as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
        : (async function* () {
            yield* src as Iterable<Uint8Array>;
          })();
  }

  private async fill(): Promise<boolean> {
    const r = await this.it.next();
    if (r.done) return false;
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.hash.update(chunk);
    this.size += chunk.length;
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
    return true;
  }

  async read(n: number): Promise<Buffer> {
    while (this.buf.length - this.pos < n) {
      if (!(await this.fill())) throw new NarFormatError('the NAR ends early (truncated download?)');
    }
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Hands out exactly n bytes as they arrive, without gathering them. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.pos >= this.buf.length && !(await this.fill())) throw new NarFormatError('the NAR ends inside a file');
      const k = Math.min(left, this.buf.length - this.pos);
      const b = this.buf.subarray(this.pos, this.pos + k);
      this.pos += k;
      left -= k;
      yield b;
    }
  }

  async u64(): Promise<number> {
    const v = (await this.read(8)).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NarFormatError('a NAR length is out of range');
    return Number(v);
  }

  async padding(len: number): Promise<void> {
    const pad = padLength(len);
    if (pad && !(await this.read(pad)).equals(ZEROS.subarray(0, pad))) throw new NarFormatError('non-zero NAR padding');
  }

  async bytes(max: number): Promise<Buffer> {
    const len = await this.u64();
    if (len > max) throw new NarFormatError(`a NAR string of ${len} bytes is longer than allowed (${max})`);
    const b = Buffer.from(await this.read(len));
    await this.padding(len);
    return b;
  }

  async str(): Promise<string> {
    return (await this.bytes(MAX_TOKEN)).toString('latin1');
  }

  async expect(tok: string): Promise<void> {
    const got = await this.str();
    if (got !== tok) throw new NarFormatError(`expected "${tok}" in the NAR, found "${got.slice(0, 40)}"`);
  }

  async atEnd(): Promise<boolean> {
    if (this.pos < this.buf.length) return false;
    while (await this.fill()) if (this.buf.length > 0) return false;
    return true;
  }
}

function checkName(name: Buffer): string {
  if (name.length === 0 || name.includes(0x2f) || name.includes(0) || name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) {
    throw new NarFormatError(`the NAR holds an invalid entry name "${name.toString('utf8').slice(0, 60)}"`);
  }
  return name.toString('utf8');
}

const WRITE_BATCH = 1 << 20;

// Store objects carry mtime 1 and read-only modes, as Nix's canonicalisation leaves them.
const EPOCH1 = new Date(1000);

async function unpackNode(r: ByteReader, dest: string): Promise<void> {
  await r.expect('(');
  await r.expect('type');
  const type = await r.str();
  if (type === 'regular') {
    let tok = await r.str();
    let executable = false;
    if (tok === 'executable') {
      await r.expect('');
      executable = true;
      tok = await r.str();
    }
    if (tok !== 'contents') throw new NarFormatError(`expected "contents" in the NAR, found "${tok.slice(0, 40)}"`);
    const len = await r.u64();
    const fh = await fs.open(dest, 'wx', 0o644);
    try {
      // decompressors hand over 64 KiB at a time: gathering them into one writev per MiB saves
      // most of the round trips to the I/O threads
      let pending: Buffer[] = [];
      let bytes = 0;
      for await (const b of r.take(len)) {
        pending.push(b);
        bytes += b.length;
        if (bytes >= WRITE_BATCH) {
          await fh.writev(pending);
          pending = [];
          bytes = 0;
        }
      }
      if (pending.length) await fh.writev(pending);
    } finally {
      await fh.close();
    }
    await r.padding(len);
    await fs.chmod(dest, executable ? 0o555 : 0o444);
    await fs.utimes(dest, EPOCH1, EPOCH1);
    await r.expect(')');
  } else if (type === 'symlink') {
    await r.expect('target');
    const target = await r.bytes(MAX_TARGET);
    if (target.length === 0 || target.includes(0)) throw new NarFormatError('the NAR holds an empty or invalid symlink target');
    await fs.symlink(target.toString('utf8'), dest);
    await fs.lutimes(dest, EPOCH1, EPOCH1).catch(() => undefined);
    await r.expect(')');
  } else if (type === 'directory') {
    await fs.mkdir(dest, { mode: 0o755 });
    let prev: Buffer | undefined;
    for (;;) {
      const tok = await r.str();
      if (tok === ')') break;
      if (tok !== 'entry') throw new NarFormatError(`expected "entry" or ")" in a NAR directory, found "${tok.slice(0, 40)}"`);
      await r.expect('(');
      await r.expect('name');
      const nameBytes = await r.bytes(MAX_TOKEN);
      const name = checkName(nameBytes);
      if (prev && Buffer.compare(prev, nameBytes) >= 0) {
        throw new NarFormatError(`NAR directory entries are not sorted and unique ("${name}" after "${prev.toString('utf8')}")`);
      }
      prev = nameBytes;
      await r.expect('node');
      await unpackNode(r, path.join(dest, name));
      await r.expect(')');
    }
    await fs.chmod(dest, 0o555);
    await fs.utimes(dest, EPOCH1, EPOCH1);
  } else {
    throw new NarFormatError(`unknown NAR node type "${type.slice(0, 40)}"`);
  }
}

/** Unpacks the NAR read from `src` at `dest` (which must not exist). Throws NarFormatError on bad input. */
export async function unpackNar(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, dest: string): Promise<UnpackResult> {
  const r = new ByteReader(src);
  await r.expect('nix-archive-1');
  await unpackNode(r, dest);
  if (!(await r.atEnd())) throw new NarFormatError('the NAR has data after its end');
  return { hash: r.hash.digest(), size: r.size };
}
