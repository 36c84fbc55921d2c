// Stage "unpack": a release .tar.xz into the staging directory, refusing anything that could write
// outside it. The tarball has been checksummed, but the checksum only proves it is the file the URL
// named — a mirror or a hand-made --url can still serve a hostile archive, so every entry is checked
// before it touches the disk and nothing is ever written through a symlink.
//
// Extraction goes into `<dest>.partial` and is renamed to `<dest>` only when complete, so a kill
// mid-way leaves no half tree that a re-run could mistake for a finished one.
import {
  constants as C,
  chmodSync,
  closeSync,
  createReadStream,
  fchmodSync,
  promises as fs,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { decompressXz, xzDecoder } from '../codec/xz.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { removeTree } from '../util/fs.ts';

export interface UnpackProgress {
  /** compressed bytes read */
  received: number;
  total: number;
  entries: number;
}

export interface UnpackOptions {
  tarball: string;
  dest: string;
  onProgress?: (p: UnpackProgress) => void;
  /** decompress with the bundled WebAssembly xz even when `xz` is on PATH (also: RELONIX_NO_HOST_XZ=1) */
  noHostXz?: boolean;
}

/** Absolute symlinks may point here: they name other store paths and are relocated later. */
const ALLOWED_ABSOLUTE_PREFIX = '/nix/store/';

class Refusal extends Error {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super(`entry "${entry}" ${reason}`);
  }
}

/** Archive-relative path split into components; refuses absolute names and `..`. */
function components(name: string, entry: string, what = 'name'): string[] {
  if (name.includes('\0')) throw new Refusal(entry, `has a NUL byte in its ${what}`);
  if (name.startsWith('/')) throw new Refusal(entry, `has an absolute ${what} (${name})`);
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new Refusal(entry, `has a ".." component in its ${what} (${name}), which could reach outside the destination`);
  if (parts.length === 0) throw new Refusal(entry, `has an empty ${what}`);
  return parts;
}

/** Every existing ancestor must be a real directory: writing below a symlink would write through it. */
function checkParents(root: string, parts: string[], entry: string, create = true): void {
  let cur = root;
  for (const c of parts.slice(0, -1)) {
    cur = path.join(cur, c);
    let st;
    try {
      st = lstatSync(cur);
    } catch {
      if (!create) return; // the caller finds the target missing and says so
      mkdirSync(cur, { mode: 0o755 }); // tarballs may omit directory entries
      continue;
    }
    if (st.isSymbolicLink()) throw new Refusal(entry, `lies below the symlink "${path.relative(root, cur)}"; extracting it would write through the link`);
    if (!st.isDirectory()) throw new Refusal(entry, `lies below "${path.relative(root, cur)}", which is not a directory`);
  }
}

function checkSymlinkTarget(parts: string[], target: string, entry: string): void {
  if (target.includes('\0')) throw new Refusal(entry, 'has a NUL byte in its link target');
  if (target.startsWith('/')) {
    const norm = path.posix.normalize(target);
    if (!norm.startsWith(ALLOWED_ABSOLUTE_PREFIX) || norm.length === ALLOWED_ABSOLUTE_PREFIX.length) {
      throw new Refusal(entry, `is a symlink to ${target}, outside the tarball (only ${ALLOWED_ABSOLUTE_PREFIX}… is allowed)`);
    }
    return;
  }
  const resolved = path.posix.normalize(path.posix.join(...parts.slice(0, -1).concat(['.']), target));
  if (resolved === '..' || resolved.startsWith('../')) {
    throw new Refusal(entry, `is a symlink to ${target}, which resolves outside the tarball`);
  }
}

/** Applies one entry to the tree under root, synchronously so entries land in archive order. */
class Extractor {
  entries = 0;
  constructor(readonly root: string) {}

  apply(e: ReadEntry): void {
    const entry = e.path;
    const type = e.type;
    if (type === 'CharacterDevice' || type === 'BlockDevice' || type === 'FIFO') {
      throw new Refusal(entry, `is a ${type === 'FIFO' ? 'FIFO' : 'device node'}, which a Nix tarball never holds`);
    }
    const known = ['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link'];
    if (!known.includes(type)) throw new Refusal(entry, `has the unsupported type ${type}`);
    const parts = components(entry, entry);
    checkParents(this.root, parts, entry);
    const target = path.join(this.root, ...parts);
    let existing;
    try {
      existing = lstatSync(target);
    } catch {
      existing = undefined;
    }
    // no entry may replace another (a second entry is how archives swap a directory for a link)
    if (existing && !(type === 'Directory' && existing.isDirectory())) throw new Refusal(entry, 'appears twice in the archive');
    // drop setuid, setgid and sticky bits: nothing in a store needs them, and they must not spread
    const mode = (e.mode ?? 0o644) & 0o777;
    this.entries++;

    switch (type) {
      case 'Directory':
        // store directories are read-only in the tarball; keep them owner-writable so relocation can work
        if (!existing) mkdirSync(target, { mode: 0o700 });
        chmodSync(target, mode | 0o700);
        e.resume();
        return;
      case 'SymbolicLink': {
        const linkTarget = e.linkpath ?? '';
        if (!linkTarget) throw new Refusal(entry, 'is a symlink with an empty target');
        checkSymlinkTarget(parts, linkTarget, entry);
        symlinkSync(linkTarget, target);
        e.resume();
        return;
      }
      case 'Link': {
        const linkParts = components(e.linkpath ?? '', entry, 'hardlink target');
        checkParents(this.root, linkParts, entry, false);
        const src = path.join(this.root, ...linkParts);
        let st;
        try {
          st = lstatSync(src);
        } catch {
          throw new Refusal(entry, `is a hardlink to ${e.linkpath}, which is not an earlier file of the archive`);
        }
        if (!st.isFile()) throw new Refusal(entry, `is a hardlink to ${e.linkpath}, which is not a regular file`);
        linkSync(src, target);
        e.resume();
        return;
      }
      default: {
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
        e.on('data', (chunk: Buffer) => {
          let off = 0;
          while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        });
        e.on('end', close);
        e.on('error', close);
        this.pending.push(() => close());
      }
    }
  }

  /** closers for files still open when extraction is aborted */
  pending: (() => void)[] = [];
}

/** The tarball's bytes as they are read, counted by `onRead`. */
async function* counted(tarball: string, onRead: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(tarball, { highWaterMark: 1 << 20 })) {
    onRead((chunk as Buffer).length);
    yield chunk as Buffer;
  }
}

/** Where a path ends up: inside the extracted tree, or inside the (virtual) /nix/store. */
type Location = { tree: string[] } | { store: string[] };

/**
 * Resolves `target`, seen from the tree directory `from`, through the links of the extracted tree.
 * Each link passed the lexical check on its own, but a chain (`b -> a/../..` with `a -> /nix/store/x`)
 * could still end outside: links into /nix/store continue in a virtual store, where climbing above the
 * store is an escape too.
 */
function resolveIn(root: string, entry: string, from: string[], target: string, hops: number): Location {
  if (hops > 40) throw new Refusal(entry, 'is part of a symlink loop');
  let loc: Location = target.startsWith('/') ? { store: [] } : { tree: [...from] };
  const rest = target.startsWith('/') ? path.posix.normalize(target).slice(ALLOWED_ABSOLUTE_PREFIX.length) : target;
  for (const c of rest.split('/')) {
    if (c === '' || c === '.') continue;
    if ('store' in loc) {
      if (c !== '..') loc.store.push(c);
      else if (loc.store.pop() === undefined) throw new Refusal(entry, `resolves through other links to above ${ALLOWED_ABSOLUTE_PREFIX}`);
      continue;
    }
    if (c === '..') {
      if (loc.tree.pop() === undefined) throw new Refusal(entry, 'resolves through other links to outside the tarball');
      continue;
    }
    loc.tree.push(c);
    const p = path.join(root, ...loc.tree);
    let isLink = false;
    try {
      isLink = lstatSync(p).isSymbolicLink();
    } catch {
      // dangling from here on: nothing real to follow
    }
    if (isLink) loc = resolveIn(root, entry, loc.tree.slice(0, -1), readlinkSync(p), hops + 1);
  }
  return loc;
}

function checkAllLinks(root: string, dir = ''): void {
  for (const e of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isSymbolicLink()) resolveIn(root, rel, rel.split('/').slice(0, -1), readlinkSync(path.join(root, rel)), 0);
    else if (e.isDirectory()) checkAllLinks(root, rel);
  }
}

async function findRoot(dir: string): Promise<string> {
  const names = (await fs.readdir(dir)).filter((n) => !n.startsWith('.'));
  if (names.length !== 1 || !(await fs.lstat(path.join(dir, names[0]!))).isDirectory()) {
    throw new RelonixError(`the tarball should hold exactly one top directory (nix-<version>-<system>/), found: ${names.join(', ') || 'nothing'}`, {
      kind: 'integrity',
      hint: 'use an official Nix binary tarball (nix-<version>-<system>.tar.xz)',
    });
  }
  return path.join(dir, names[0]!);
}

function unpackError(tarball: string, e: unknown): unknown {
  if (e instanceof Refusal) {
    return new RelonixError(`refusing to unpack ${tarball}: ${e.message}`, {
      kind: 'integrity',
      hint: 'this is not a well-formed Nix release tarball; fetch the official one (releases.nixos.org) and check its sha256',
    });
  }
  if (e instanceof RelonixError) return e;
  return new RelonixError(`could not unpack ${tarball}: ${errorMessage(e)}`, {
    kind: 'integrity',
    hint: 'the file is damaged or not a .tar.xz; delete it and download it again',
    cause: e,
  });
}

/** Decompresses and extracts the tarball into the Extractor's tree; throws the first failure. */
async function extract(opts: UnpackOptions, ex: Extractor, onRead: (n: number) => void): Promise<void> {
  // one big file: the host xz decodes it on every core
  const bytes = decompressXz(counted(opts.tarball, onRead), { noHost: opts.noHostXz, threads: 0 });
  let failure: unknown;
  const parser = new Parser({ strict: true });
  parser.on('entry', (e: ReadEntry) => {
    if (failure) {
      e.resume();
      return;
    }
    try {
      ex.apply(e);
    } catch (err) {
      failure = err;
      e.resume();
    }
  });
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('close', resolve);
    parser.on('error', reject);
  });
  parsed.catch(() => {});
  try {
    // leaving the loop early stops the decompressor
    for await (const chunk of bytes) {
      if (failure) break;
      if (!parser.write(chunk as Buffer)) await new Promise((r) => parser.once('drain', r));
    }
    if (!failure) {
      parser.end();
      await parsed;
      for (const close of ex.pending) close(); // every file has ended by now; this only asserts it
    }
  } catch (e) {
    failure ??= e;
  }
  if (!failure) return;
  for (const close of ex.pending) {
    try {
      close();
    } catch {
      // already closed
    }
  }
  throw failure;
}

export async function unpackTarball(opts: UnpackOptions): Promise<{ root: string; via?: 'xz' | 'wasm' | 'existing' }> {
  const dest = path.resolve(opts.dest);
  try {
    if ((await fs.lstat(dest)).isDirectory()) return { root: await findRoot(dest), via: 'existing' };
  } catch (e) {
    if (e instanceof RelonixError) throw e;
  }
  const partial = `${dest}.partial`;
  await removeTree(partial); // a kill mid-way left it: start that unpack over
  await fs.mkdir(partial, { recursive: true, mode: 0o755 });
  const total = (await fs.stat(opts.tarball)).size;
  const ex = new Extractor(partial);
  let received = 0;
  const report = () => opts.onProgress?.({ received, total, entries: ex.entries });
  let root: string;
  try {
    await extract(opts, ex, (n) => {
      received += n;
      report();
    });
    checkAllLinks(partial);
    if (ex.entries === 0) throw new RelonixError(`${opts.tarball} holds no files`, { kind: 'integrity', hint: 'download the tarball again' });
    root = await findRoot(partial);
  } catch (e) {
    await removeTree(partial);
    throw unpackError(opts.tarball, e);
  }
  await fs.rename(partial, dest);
  report();
  return { root: path.join(dest, path.basename(root)), via: xzDecoder({ noHost: opts.noHostXz }) };
}
