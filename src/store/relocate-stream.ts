// Relocating store paths while they are unpacked: each file is planned from its bytes in memory
// (the ELF engine, text rewrites) and written once, in its final form, instead of being written,
// read back and replaced. Each path's NAR hash is taken from what was written once the archive has
// moved past the path. What a path ends with is exactly what relocateTree records for it.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { compareNames } from './nar/framing.ts';
import { NarHasher } from './nar/write.ts';
import { type Appended, type ElfRelocator, type OwnElfRelocator, planFile, rewriteLinkTarget } from './relocate-text.ts';
import { emptyCounts, type PathResult } from './relocate-tree.ts';

/** One entry below a store path of the archive. */
export interface StoreEntry {
  /** the store path's `<hash>-<name>` */
  basename: string;
  /** components below it; none for the store path itself */
  rel: string[];
  /** where the entry is written */
  abs: string;
}

type Node =
  | { kind: 'dir'; entries: Map<string, Node> }
  | { kind: 'file'; content: Buffer; appended?: Appended; executable: boolean }
  | { kind: 'link'; target: string };

interface PathState {
  result: PathResult;
  root?: Node;
  /** bytes of file content held for the NAR hash */
  held: number;
  /** false once the hash cannot be taken here (the register stage hashes the path from disk) */
  hashable: boolean;
  sealed: boolean;
}

export interface StreamRelocationOptions {
  from: string;
  to: string;
  /** with an OwnElfRelocator, the buffers given to file() are edited where they lie */
  relocateElf: ElfRelocator | OwnElfRelocator;
  /** content held per path for its hash before giving up on hashing it here (default 512 MiB) */
  maxHeld?: number;
}

/** The canonical store mode of a file: only the executable bit is part of a NAR. */
export function storeMode(mode: number): number {
  return mode & 0o111 ? 0o555 : 0o444;
}

export class StreamRelocation {
  private readonly paths = new Map<string, PathState>();
  private current?: string;
  /** paths left to be relocated from disk (a file too big to hold): relocateTree treats them as interrupted */
  readonly abandoned = new Set<string>();

  constructor(private readonly o: StreamRelocationOptions) {}

  /** Whether entries of this store path are relocated here. */
  relocates(basename: string): boolean {
    return !this.abandoned.has(basename);
  }

  /** A regular file's final bytes (`content`, then any `appended`) and mode. */
  file(at: StoreEntry, content: Buffer, mode: number): { content: Buffer; appended?: Appended; mode: number } {
    const s = this.enter(at.basename);
    const c = s.result.counts;
    c.files++;
    const plan = planFile(content, this.o.from, this.o.to, this.o.relocateElf, at.abs);
    if (plan.kind === 'text' && plan.rewritten > 0) {
      c.textFiles++;
      c.textRefs += plan.rewritten;
    } else if (plan.rewritten > 0) c.binaryFiles++;
    if (plan.elfPatched) c.elfPatched++;
    const destRoot = path.join(this.o.to, at.basename);
    for (const h of plan.unrewritable) {
      s.result.hits.push({ file: path.join(destRoot, ...at.rel), offset: h.offset, string: h.string });
      c.unrewritable++;
    }
    if (plan.content) s.result.changed = true;
    const final = plan.content ?? content;
    const appended = plan.appended;
    const size = appended ? appended.at + appended.bytes.length : final.length;
    this.hold(s, at.rel, { kind: 'file', content: final, appended, executable: (mode & 0o111) !== 0 }, size);
    return { content: final, appended, mode: storeMode(mode) };
  }

  /** A symlink's final target. */
  symlink(at: StoreEntry, target: string): string {
    const s = this.enter(at.basename);
    const next = rewriteLinkTarget(target, this.o.from, this.o.to);
    if (next !== null) {
      s.result.counts.symlinks++;
      s.result.changed = true;
    }
    this.hold(s, at.rel, { kind: 'link', target: next ?? target }, 0);
    return next ?? target;
  }

  directory(at: StoreEntry): void {
    const s = this.enter(at.basename);
    if (s.hashable) this.place(s, at.rel, undefined);
  }

  /** A second name for a file written before (`src`, on disk in its final form). */
  hardlink(at: StoreEntry, src: string): void {
    const s = this.enter(at.basename);
    s.result.counts.files++;
    if (!s.hashable) return;
    // written by this extraction already, so its mode is the store mode
    const content = readFileSync(src);
    const { mode } = statSync(src);
    this.hold(s, at.rel, { kind: 'file', content, executable: (mode & 0o111) !== 0 }, content.length);
  }

  /** The path is left for relocation from disk: a file in it is too big to hold in memory. */
  abandon(basename: string): void {
    this.abandoned.add(basename);
    this.paths.delete(basename);
    if (this.current === basename) this.current = undefined;
  }

  /** What each path relocated here ended with, its NAR hash taken where it could be. */
  results(): PathResult[] {
    if (this.current) this.seal(this.paths.get(this.current)!);
    this.current = undefined;
    return [...this.paths.values()].map((s) => s.result);
  }

  private enter(basename: string): PathState {
    if (this.current !== basename) {
      if (this.current) this.seal(this.paths.get(this.current)!);
      this.current = basename;
    }
    let s = this.paths.get(basename);
    if (!s) {
      s = { result: { basename, changed: false, counts: emptyCounts(), hits: [] }, held: 0, hashable: true, sealed: false };
      this.paths.set(basename, s);
    } else if (s.sealed) {
      // the archive came back to a path it had left: its hash is taken from disk later
      s.hashable = false;
      s.result.narHash = undefined;
      s.result.narSize = undefined;
    }
    return s;
  }

  private hold(s: PathState, rel: string[], node: Node, bytes: number): void {
    if (!s.hashable) return;
    s.held += bytes;
    if (s.held > (this.o.maxHeld ?? 512 * 1024 * 1024)) {
      s.hashable = false;
      s.root = undefined;
      return;
    }
    this.place(s, rel, node);
  }

  /** Puts a node (or, undefined, a directory) at `rel`, making the directories above it. */
  private place(s: PathState, rel: string[], node: Node | undefined): void {
    if (rel.length === 0) {
      if (!s.root || node) s.root = node ?? { kind: 'dir', entries: new Map() };
      return;
    }
    if (!s.root) s.root = { kind: 'dir', entries: new Map() };
    let dir = s.root;
    for (const name of rel.slice(0, -1)) {
      if (dir.kind !== 'dir') return; // the extractor refuses such an archive
      let next = dir.entries.get(name);
      if (!next) {
        next = { kind: 'dir', entries: new Map() };
        dir.entries.set(name, next);
      }
      dir = next;
    }
    if (dir.kind !== 'dir') return;
    const name = rel.at(-1)!;
    if (node) dir.entries.set(name, node);
    else if (!dir.entries.has(name)) dir.entries.set(name, { kind: 'dir', entries: new Map() });
  }

  private seal(s: PathState): void {
    s.sealed = true;
    if (!s.hashable || !s.root) return;
    const nar = new NarHasher();
    hashNode(nar, s.root);
    s.result.narHash = nar.h.digest('hex');
    s.result.narSize = nar.size;
    s.root = undefined;
  }
}

function hashNode(nar: NarHasher, n: Node): void {
  nar.open();
  if (n.kind === 'file') nar.regular(n.appended ? [n.content, Buffer.alloc(n.appended.at - n.content.length), n.appended.bytes] : n.content, n.executable);
  else if (n.kind === 'link') nar.symlink(n.target);
  else {
    nar.directory();
    for (const name of [...n.entries.keys()].sort(compareNames)) {
      nar.entry(name);
      hashNode(nar, n.entries.get(name)!);
      nar.close();
    }
  }
  nar.close();
}
