// A NAR rewritten for another store dir of the same length, as a stream. Contents, symlink targets
// and entry names are rewritten in place; a directory whose renamed entries change their order is
// re-sorted, which is why a directory's output is held back (in a spool) until it ends.
import { createHash } from 'node:crypto';
import {
  CLOSE,
  CONTENTS,
  EMPTY,
  ENTRY_NAME,
  EXECUTABLE,
  MAGIC,
  MAX_TARGET,
  MAX_TOKEN,
  NarFormatError,
  NODE,
  OPEN_NAME,
  OPEN_TYPE,
  padLength,
  TARGET,
  ZEROS,
} from '../store/nar/framing.ts';
import { checkEntryName, NarReader } from '../store/nar/reader.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { Batch } from './batch.ts';
import { type CompressedFormat, type ReferencesFound, SNIFF_BYTES, scanCompressed, sniffCompressed } from './compressed.ts';
import { type Compiled, type Counts, compileRules, type RewriteRules, replaceAll, replaceIn, replaceStream } from './replace.ts';
import { Spool, type SpoolOptions } from './spool.ts';

export interface CompressedFile {
  /** the file's path inside the NAR (rewritten names), '' for a NAR that is one file */
  file: string;
  format: CompressedFormat;
  /** old store references inside the decompressed data: these were not rewritten */
  found: ReferencesFound[];
  /** matches rewritten in the compressed bytes themselves (stored zip members): their checksums no longer match */
  rewrittenInPlace: number;
  /** why the data could not be read, if it could not */
  error?: string;
}

export interface RewriteSummary {
  /** sha256 and size of the NAR read, to check against the narinfo it came with */
  input?: { hash: Buffer; size: number };
  /** sha256 and size of the NAR written: its NarHash and NarSize */
  output?: { hash: Buffer; size: number };
  replaced: Counts;
  /** directories whose entries were re-sorted */
  resorted: number;
  /** bytes held back in a temporary file rather than in memory */
  spilled: number;
  compressed: CompressedFile[];
}

export interface NarRewrite {
  chunks: AsyncGenerator<Buffer>;
  /** filled in as the chunks are read; complete once they end */
  summary: RewriteSummary;
}

/** Byte ranges of the walk's output in the order they are to be written: start, end, start, end, … */
type Ranges = number[];

function push(r: Ranges, from: number, to: number): void {
  if (from === to) return;
  if (r.length && r[r.length - 1] === from) r[r.length - 1] = to;
  else r.push(from, to);
}

function append(r: Ranges, more: Ranges): void {
  for (let i = 0; i < more.length; i += 2) push(r, more[i]!, more[i + 1]!);
}

class Walk {
  private readonly out = new Batch();

  constructor(
    private readonly r: NarReader,
    private readonly c: Compiled,
    /** names can change, so directories are held back and their entries' places recorded */
    readonly track: boolean,
    private readonly s: RewriteSummary,
    private readonly opts: SpoolOptions,
  ) {}

  /** the (rewritten) names from the root to the node being read */
  private readonly names: Buffer[] = [];

  /** The node's path in the NAR, for reports: built only when one is made. */
  private where(): string {
    return this.names.map((n) => n.toString()).join('/');
  }

  /** bytes of output so far */
  get pos(): number {
    return this.out.pos;
  }

  private emit(...bufs: Buffer[]): void {
    for (const b of bufs) this.out.put(b);
  }

  async readType(): Promise<string> {
    await this.r.expect(OPEN_TYPE, '"(" "type"');
    return this.r.str();
  }

  async *root(type: string): AsyncGenerator<Buffer, Ranges> {
    this.emit(MAGIC);
    const ranges: Ranges = [0, this.pos];
    append(ranges, yield* this.node(type));
    yield* this.out.take(true);
    return ranges;
  }

  private async *node(type: string): AsyncGenerator<Buffer, Ranges> {
    const start = this.pos;
    this.emit(OPEN_TYPE);
    this.out.putString(Buffer.from(type, 'latin1'));
    if (type === 'directory') return yield* this.directory(start);
    if (type === 'regular') yield* this.regular();
    else if (type === 'symlink') {
      await this.r.expect(TARGET, '"target"');
      const target = await this.r.bytes(MAX_TARGET);
      this.emit(TARGET);
      this.out.putString(replaceAll(target, this.c, this.s.replaced));
    } else throw new NarFormatError(`unknown NAR node type "${type.slice(0, 40)}"`);
    await this.r.expect(CLOSE, '")"');
    this.emit(CLOSE);
    return [start, this.pos];
  }

  private async *regular(): AsyncGenerator<Buffer> {
    let tok = await this.r.str();
    if (tok === 'executable') {
      await this.r.expect(EMPTY, '""');
      this.emit(EXECUTABLE);
      tok = await this.r.str();
    }
    if (tok !== 'contents') throw new NarFormatError(`expected "contents" in the NAR, found "${tok.slice(0, 40)}"`);
    const len = await this.r.u64();
    this.emit(CONTENTS);
    this.out.u64(len);
    // a small file is often buffered whole already: no stream for it
    const whole = this.r.tryRead(len);
    const head = whole ?? (await this.r.read(Math.min(len, SNIFF_BYTES)));
    const format = sniffCompressed(head.subarray(0, SNIFF_BYTES));
    const side = format ? new Spool(this.opts) : undefined;
    try {
      const before = this.s.replaced.hashes + this.s.replaced.storeDirs;
      if (whole) {
        await side?.append(whole);
        const room = this.out.room(len);
        whole.copy(room);
        replaceIn(room, len, this.c, this.s.replaced);
      } else {
        for await (const b of replaceStream(this.contents(head, len - head.length, side), this.c, this.s.replaced)) {
          this.out.put(b);
          yield* this.out.take();
        }
      }
      await this.r.padding(len);
      this.emit(ZEROS.subarray(0, padLength(len)));
      if (format) await this.inspect(this.where(), format, side!, this.s.replaced.hashes + this.s.replaced.storeDirs - before);
    } finally {
      await side?.close();
    }
  }

  /** A file's contents as read, with the original bytes of a compressed file kept for a look inside. */
  private async *contents(head: Buffer, rest: number, side: Spool | undefined): AsyncGenerator<Buffer> {
    await side?.append(head);
    yield head;
    for await (const b of this.r.take(rest)) {
      await side?.append(b);
      yield b;
    }
  }

  private async inspect(file: string, format: CompressedFormat, side: Spool, rewrittenInPlace: number): Promise<void> {
    let found: ReferencesFound[] = [];
    let error: string | undefined;
    try {
      found = await scanCompressed(format, side, this.c.oldDir);
    } catch (e) {
      error = errorMessage(e);
    }
    if (found.length || rewrittenInPlace || error) this.s.compressed.push({ file, format, found, rewrittenInPlace, ...(error === undefined ? {} : { error }) });
  }

  private async *directory(start: number): AsyncGenerator<Buffer, Ranges> {
    const head = this.pos;
    const entries: { name: Buffer; ranges: Ranges }[] = [];
    let prev: Buffer | undefined;
    for (let tok = await this.r.str(); tok !== ')'; tok = await this.r.str()) {
      if (tok !== 'entry') throw new NarFormatError(`expected "entry" or ")" in a NAR directory, found "${tok.slice(0, 40)}"`);
      await this.r.expect(OPEN_NAME, '"(" "name"');
      const name = await this.r.bytes(MAX_TOKEN);
      checkEntryName(name, prev);
      prev = name;
      await this.r.expect(NODE, '"node"');
      // a name holds no '/', so no store dir: only hash parts can change it
      const renamed = this.track ? replaceAll(name, this.c, this.s.replaced) : name;
      const entry = this.pos;
      this.emit(ENTRY_NAME);
      this.out.putString(renamed);
      this.emit(NODE);
      const ranges: Ranges = [entry, this.pos];
      const type = await this.readType();
      this.names.push(renamed);
      append(ranges, yield* this.node(type));
      this.names.pop();
      await this.r.expect(CLOSE, '")"');
      const end = this.pos;
      this.emit(CLOSE);
      push(ranges, end, this.pos);
      if (this.track) entries.push({ name: renamed, ranges });
      yield* this.out.take();
    }
    const close = this.pos;
    this.emit(CLOSE);
    if (!this.track) return [start, this.pos];
    if (entries.some((e, i) => i > 0 && Buffer.compare(entries[i - 1]!.name, e.name) >= 0)) {
      entries.sort((a, b) => Buffer.compare(a.name, b.name));
      const dup = entries.find((e, i) => i > 0 && entries[i - 1]!.name.equals(e.name));
      if (dup) throw namesCollide(this.where() || '/', dup.name.toString());
      this.s.resorted++;
    }
    const ranges: Ranges = [start, head];
    for (const e of entries) append(ranges, e.ranges);
    push(ranges, close, this.pos);
    return ranges;
  }
}

/**
 * Rewrites a NAR for another store dir: the store dir and every mapped hash part, in contents,
 * symlink targets and names. Memory stays bounded by the chunk size plus the names of the open
 * directories, whatever the NAR's size: held-back output goes to a spool file past its limit.
 */
export function rewriteNar(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, rules: RewriteRules, opts: SpoolOptions = {}): NarRewrite {
  const c = compileRules(rules);
  const summary: RewriteSummary = { replaced: { hashes: 0, storeDirs: 0 }, resorted: 0, spilled: 0, compressed: [] };
  return { chunks: run(src, c, summary, opts), summary };
}

async function* run(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, c: Compiled, summary: RewriteSummary, opts: SpoolOptions): AsyncGenerator<Buffer> {
  const r = new NarReader(src);
  const hash = createHash('sha256');
  let size = 0;
  const written = (b: Buffer) => {
    hash.update(b);
    size += b.length;
    return b;
  };
  let spool: Spool | undefined;
  try {
    await r.expect(MAGIC, '"nix-archive-1"');
    // only a hash part in a name can change an order, and only a directory has one
    const walk = new Walk(r, c, c.hashCount > 0, summary, opts);
    const type = await walk.readType();
    const tree = walk.root(type);
    if (!walk.track || type !== 'directory') {
      for await (const b of tree) yield written(b);
    } else {
      spool = new Spool(opts);
      let step = await tree.next();
      for (; !step.done; step = await tree.next()) await spool.append(step.value);
      if (spool.onDisk) summary.spilled = spool.size;
      for await (const b of spool.read(step.value)) yield written(b);
    }
    if (!(await r.atEnd())) throw new NarFormatError('the NAR has data after its end');
    if (size !== r.size) throw new Error(`internal error: the rewritten NAR has ${size} bytes, not ${r.size}`);
    summary.input = { hash: r.hash.digest(), size: r.size };
    summary.output = { hash: hash.digest(), size };
  } catch (e) {
    if (e instanceof NarFormatError) throw narMalformed(e);
    throw e;
  } finally {
    await spool?.close();
    // what stopped the reading matters more than whether the input let go cleanly
    await r.close().catch(() => undefined);
  }
}

/** Two entries of one directory that the rewrite gives one name. */
export function namesCollide(dir: string, name: string): RelonixError {
  return new RelonixError(`two entries of "${dir}" are both called "${name}" once rewritten`, {
    kind: 'integrity',
    hint: 'the NAR names a path under its old and its new hash at once; it cannot be rewritten',
  });
}

/** A NAR that does not parse: never rewritten. */
export function narMalformed(e: NarFormatError): RelonixError {
  return new RelonixError(`the NAR is malformed: ${e.message}`, {
    kind: 'integrity',
    hint: 'fetch it again; a NAR that does not parse is never rewritten',
    cause: e,
  });
}
