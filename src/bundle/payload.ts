// The payload of a bundle before compression: a tar of the closure as the run dir will hold it, every
// reference to the store dir already rewritten to the run dir (file contents and symlink targets),
// and last the list of where the run dir is named, so RELONIX_RUN_DIR can put another dir of the
// same length at those offsets without searching. Store paths and entries go in name order, and
// hard links stay links: the same closure gives the same bytes, no bigger than `tar -c` of it.
// A file name is any bytes but '/' and NUL, UTF-8 or not: names are carried as byte strings (one
// char a byte, latin1), turned into bytes for the filesystem and the archive, and into UTF-8 only
// for messages.
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { changedWhileRead, notStorable } from '../store/errors.ts';
import { compareNames } from '../store/nar/framing.ts';
import { rewriteLinkTarget } from '../store/relocate-text.ts';
import { type CompressedFormat, SNIFF_BYTES, scanCompressed, sniffCompressed } from '../translate/compressed.ts';
import { Spool } from '../translate/spool.ts';
import { PATCHES } from './launcher.ts';
import { rewriteStoreDir } from './rewrite.ts';
import { TAR_END, tarHeader, tarPadding } from './tar.ts';

export interface PayloadInput {
  storeDir: string;
  runDir: string;
  /** the store paths, full */
  paths: string[];
  /** called as each store path is done */
  onPath?: (done: number, total: number) => void;
}

/** A file that holds store references inside compressed data: those stay as they were built. */
export interface CompressedRefs {
  file: string;
  format: CompressedFormat;
  occurrences: number;
}

export interface PayloadStats {
  files: number;
  symlinks: number;
  directories: number;
  /** bytes of file content */
  bytes: number;
  /** references to the store dir rewritten, in file contents and symlink targets */
  references: number;
  compressed: CompressedRefs[];
  /** why RELONIX_RUN_DIR cannot be honoured, when a name cannot go in the patch list */
  fixed?: string;
}

/** A name as bytes, from its byte string. */
const bytes = (name: string): Buffer => Buffer.from(name, 'latin1');
/** A byte string as people read it (UTF-8, where it is). */
const shown = (name: string): string => bytes(name).toString();
/** Byte order, as a NAR sorts entries: for byte strings, the order of their chars. */
const byBytes = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const FILE_MODE = 0o444;
const EXEC_MODE = 0o555;
/** directories stay writable in the payload, so that tar can fill them and RELONIX_RUN_DIR patch them; the launcher locks them after */
const DIR_MODE = 0o755;

class Walk {
  readonly stats: PayloadStats = { files: 0, symlinks: 0, directories: 0, bytes: 0, references: 0, compressed: [] };
  /** the patch list: `b NAME` and its offsets, `l NAME` and its target after the run dir */
  private readonly patches: string[] = [];
  /** dev:ino of a file with several links -> the first name it was written under */
  private readonly linked = new Map<string, string>();

  /** the store dir and the run dir as byte strings, for link targets */
  private readonly from: string;
  private readonly to: string;

  constructor(private readonly o: PayloadInput) {
    this.from = Buffer.from(o.storeDir).toString('latin1');
    this.to = Buffer.from(o.runDir).toString('latin1');
  }

  async *path(storePath: string): AsyncGenerator<Buffer> {
    const p = Buffer.from(storePath).toString('latin1');
    yield* this.node(p, path.basename(p));
  }

  private note(name: string, kind: 'b' | 'l', value: string): void {
    if (name.includes('\n')) this.stats.fixed ??= `a file name holds a newline (${JSON.stringify(shown(name))}), which the run dir list cannot name`;
    else this.patches.push(`${kind} ${name}`, value);
  }

  /** `abs` and `name` are byte strings. */
  private async *node(abs: string, name: string): AsyncGenerator<Buffer> {
    const st = await fs.lstat(bytes(abs));
    if (st.isSymbolicLink()) {
      const target = (await fs.readlink(bytes(abs), { encoding: 'buffer' })).toString('latin1');
      const moved = rewriteLinkTarget(target, this.from, this.to);
      if (moved !== null) {
        this.stats.references++;
        this.note(name, 'l', moved.slice(this.to.length));
      }
      this.stats.symlinks++;
      yield tarHeader({ name, type: 'symlink', mode: 0o777, linkname: moved ?? target });
    } else if (st.isDirectory()) {
      this.stats.directories++;
      yield tarHeader({ name, type: 'directory', mode: DIR_MODE });
      const children = (await fs.readdir(bytes(abs), { encoding: 'buffer' })).map((c) => c.toString('latin1')).sort(byBytes);
      for (const child of children) yield* this.node(`${abs}/${child}`, `${name}/${child}`);
    } else if (st.isFile()) {
      yield* this.file(abs, name, st);
    } else {
      throw notStorable(shown(abs));
    }
  }

  private async *file(abs: string, name: string, st: Stats): AsyncGenerator<Buffer> {
    this.stats.files++;
    const mode = st.mode & 0o111 ? EXEC_MODE : FILE_MODE;
    const inode = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? this.linked.get(inode) : undefined;
    if (first !== undefined) {
      yield tarHeader({ name, type: 'hardlink', mode, linkname: first });
      return;
    }
    if (st.nlink > 1) this.linked.set(inode, name);
    yield tarHeader({ name, type: 'file', mode, size: st.size });
    const offsets: number[] = [];
    const side = { format: undefined as CompressedFormat | undefined, spool: undefined as Spool | undefined };
    let size = 0;
    try {
      for await (const b of rewriteStoreDir(this.sniffing(createReadStream(bytes(abs)), side), this.o.storeDir, this.o.runDir, offsets)) {
        size += b.length;
        yield b;
      }
      if (size !== st.size) throw changedWhileRead(shown(abs), size, st.size);
      if (side.format && side.spool) await this.inspect(name, side.format, side.spool);
    } finally {
      await side.spool?.close();
    }
    yield tarPadding(size);
    this.stats.bytes += size;
    this.stats.references += offsets.length;
    if (offsets.length) this.note(name, 'b', offsets.join(' '));
  }

  /** The file's chunks as read; a compressed file's original bytes are kept aside to look inside. */
  private async *sniffing(src: AsyncIterable<Buffer>, side: { format?: CompressedFormat; spool?: Spool }): AsyncGenerator<Buffer> {
    let first = true;
    for await (const b of src) {
      if (first && b.length >= SNIFF_BYTES) side.format = sniffCompressed(b.subarray(0, SNIFF_BYTES));
      if (first && side.format) side.spool = new Spool();
      first = false;
      await side.spool?.append(b);
      yield b;
    }
  }

  private async inspect(name: string, format: CompressedFormat, spool: Spool): Promise<void> {
    try {
      const found = await scanCompressed(format, spool, Buffer.from(this.o.storeDir));
      const occurrences = found.reduce((n, f) => n + f.occurrences, 0);
      if (occurrences) this.stats.compressed.push({ file: shown(name), format, occurrences });
    } catch {
      // data that only looks compressed holds nothing to report
    }
  }

  /** The patch list, as the last entry of the archive. */
  *end(): Generator<Buffer> {
    const list = bytes(this.patches.map((l) => `${l}\n`).join(''));
    yield tarHeader({ name: PATCHES, type: 'file', mode: FILE_MODE, size: list.length });
    yield list;
    yield tarPadding(list.length);
    yield TAR_END;
  }
}

/** The uncompressed payload of `o.paths` as a stream; `stats` is complete once it ends. */
export function tarClosure(o: PayloadInput): { chunks: AsyncGenerator<Buffer>; stats: PayloadStats } {
  const walk = new Walk(o);
  async function* chunks(): AsyncGenerator<Buffer> {
    const paths = [...o.paths].sort(compareNames);
    for (const [i, p] of paths.entries()) {
      yield* walk.path(p);
      o.onPath?.(i + 1, paths.length);
    }
    yield* walk.end();
  }
  return { chunks: chunks(), stats: walk.stats };
}
