// Applies tar entries to a fresh tree, in archive order, refusing anything that could write outside
// it. The tree is made by this extractor alone (a `.partial` directory it starts empty), so what
// exists in it is known without asking the disk: every check is a lookup in `made`.
//
// With a StreamRelocation, the files of store paths are relocated as they arrive: held whole in
// memory, planned, and written once in their final form with their store mode.
import { constants as C, chmodSync, closeSync, fchmodSync, linkSync, mkdirSync, openSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import type { StoreEntry, StreamRelocation } from '../store/relocate-stream.ts';
import { writeAllSync } from '../util/fs.ts';
import { checkSymlinkTarget, components, Refusal } from './archive-checks.ts';
import type { TarBody, TarHeader } from './tar-reader.ts';

type Kind = 'dir' | 'file' | 'link';

const KNOWN = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

/** Files larger than this are written as they stream and their store path relocated from disk. */
const MAX_HELD_FILE = 256 * 1024 * 1024;

export class Extractor {
  entries = 0;
  /** bytes of file content the archive's entries so far declare (the one being written included) */
  declared = 0;
  /** what this extraction made, by archive path (components joined by `/`) */
  private readonly made = new Map<string, Kind>();
  /** every symlink, by archive path, with the target the archive gave it */
  readonly links = new Map<string, string>();
  /** directories of relocated store paths, to be made read-only once everything is in */
  private readonly storeDirs: string[] = [];
  /** closers for files still open when extraction is aborted */
  readonly pending: (() => void)[] = [];

  constructor(
    readonly root: string,
    private readonly relocation?: StreamRelocation,
  ) {}

  /** Makes what the entry names; its content, if it is written, goes to the body returned. */
  apply(e: TarHeader): TarBody | undefined {
    const entry = e.path;
    const type = e.type;
    if (type === 'CharacterDevice' || type === 'BlockDevice' || type === 'FIFO') {
      throw new Refusal(entry, `is a ${type === 'FIFO' ? 'FIFO' : 'device node'}, which a Nix tarball never holds`);
    }
    if (!KNOWN.has(type)) throw new Refusal(entry, `has the unsupported type ${type}`);
    const parts = components(entry, entry);
    this.checkParents(parts, entry, true);
    const key = parts.join('/');
    const existing = this.made.get(key);
    // no entry may replace another (a second entry is how archives swap a directory for a link)
    if (existing && !(type === 'Directory' && existing === 'dir')) throw new Refusal(entry, 'appears twice in the archive');
    // drop setuid, setgid and sticky bits: nothing in a store needs them, and they must not spread
    const mode = (e.mode ?? 0o644) & 0o777;
    const target = path.join(this.root, ...parts);
    const at = this.storeEntry(parts, target);
    this.entries++;
    switch (type) {
      case 'Directory':
        // store directories are read-only in the tarball; keep them owner-writable while entries land
        if (!existing) mkdirSync(target, { mode: 0o700 });
        chmodSync(target, mode | 0o700);
        this.made.set(key, 'dir');
        if (at) {
          this.relocation!.directory(at);
          if (!existing) this.storeDirs.push(target);
        }
        return undefined;
      case 'SymbolicLink':
        this.symlink(e, parts, key, target, at);
        return undefined;
      case 'Link':
        this.hardlink(e, key, target, at);
        return undefined;
      default:
        this.made.set(key, 'file');
        this.declared += e.size;
        if (at && e.size <= MAX_HELD_FILE) return this.heldFile(target, mode, at);
        if (at) this.relocation!.abandon(at.basename);
        return this.streamedFile(target, mode);
    }
  }

  /** Store path directories read-only, deepest first, as relocation leaves them. */
  sealStoreDirs(): void {
    for (const d of this.storeDirs.reverse()) chmodSync(d, 0o555);
  }

  /** The store path an entry lies in (`<top>/store/<basename>/…`), when it is relocated here. */
  private storeEntry(parts: string[], abs: string): StoreEntry | undefined {
    if (!this.relocation || parts.length < 3 || parts[1] !== 'store') return undefined;
    const basename = parts[2]!;
    return this.relocation.relocates(basename) ? { basename, rel: parts.slice(3), abs } : undefined;
  }

  /** Every ancestor must be a directory this extraction made (made here if the archive omits it). */
  private checkParents(parts: string[], entry: string, create: boolean): boolean {
    for (let i = 1; i < parts.length; i++) {
      const key = parts.slice(0, i).join('/');
      const kind = this.made.get(key);
      if (kind === 'dir') continue;
      if (kind === 'link') throw new Refusal(entry, `lies below the symlink "${key}"; extracting it would write through the link`);
      if (kind === 'file') throw new Refusal(entry, `lies below "${key}", which is not a directory`);
      if (!create) return false; // the caller finds the target missing and says so
      // tarballs may omit directory entries
      const dir = path.join(this.root, ...parts.slice(0, i));
      mkdirSync(dir, { mode: 0o755 });
      this.made.set(key, 'dir');
      const at = this.storeEntry(parts.slice(0, i), dir);
      if (at) {
        this.relocation!.directory(at);
        this.storeDirs.push(dir);
      }
    }
    return true;
  }

  private symlink(e: TarHeader, parts: string[], key: string, target: string, at: StoreEntry | undefined): void {
    const linkTarget = e.linkpath ?? '';
    if (!linkTarget) throw new Refusal(e.path, 'is a symlink with an empty target');
    checkSymlinkTarget(parts, linkTarget, e.path);
    symlinkSync(at ? this.relocation!.symlink(at, linkTarget) : linkTarget, target);
    this.made.set(key, 'link');
    this.links.set(key, linkTarget);
  }

  private hardlink(e: TarHeader, key: string, target: string, at: StoreEntry | undefined): void {
    const linkParts = components(e.linkpath ?? '', e.path, 'hardlink target');
    const srcKey = linkParts.join('/');
    const kind = this.checkParents(linkParts, e.path, false) ? this.made.get(srcKey) : undefined;
    if (kind === undefined) throw new Refusal(e.path, `is a hardlink to ${e.linkpath}, which is not an earlier file of the archive`);
    if (kind !== 'file') throw new Refusal(e.path, `is a hardlink to ${e.linkpath}, which is not a regular file`);
    const src = path.join(this.root, ...linkParts);
    linkSync(src, target);
    this.made.set(key, 'file');
    if (at) this.relocation!.hardlink(at, src);
  }

  /** A file of a relocated store path: gathered, planned, written once. */
  private heldFile(target: string, mode: number, at: StoreEntry): TarBody {
    const chunks: Buffer[] = [];
    let size = 0;
    return {
      data: (chunk) => {
        chunks.push(chunk);
        size += chunk.length;
      },
      end: () => {
        const content = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        const out = this.relocation!.file(at, content, mode);
        const fd = openSync(target, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        try {
          writeAllSync(fd, out.content);
          if (out.appended) writeAllSync(fd, out.appended.bytes, out.appended.at);
          fchmodSync(fd, out.mode);
        } finally {
          closeSync(fd);
        }
      },
    };
  }

  /** Any other file: written as it arrives. */
  private streamedFile(target: string, mode: number): TarBody {
    const fd = openSync(target, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      try {
        fchmodSync(fd, mode);
      } finally {
        closeSync(fd);
      }
    };
    this.pending.push(close);
    return { data: (chunk) => writeAllSync(fd, chunk), end: close };
  }
}
