// Stage "unpack": a release .tar.xz into the staging directory, refusing anything that could write
// outside it. The tarball has been checksummed, but the checksum only proves it is the file the URL
// named — a mirror or a hand-made --url can still serve a hostile archive, so every entry is checked
// before it touches the disk and nothing is ever written through a symlink.
//
// Extraction goes into `<dest>.partial` and is renamed to `<dest>` only when complete, so a kill
// mid-way leaves no half tree that a re-run could mistake for a finished one.
import { spawn } from 'node:child_process';
import { createReadStream, promises as fs, constants as C, closeSync, fchmodSync, lstatSync, mkdirSync, openSync, writeSync, linkSync, symlinkSync, chmodSync, statSync, readlinkSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { RelonixError, errorMessage } from '../util/errors.ts';
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

export function hostXz(): string | undefined {
  if (process.env.RELONIX_NO_HOST_XZ === '1') return undefined;
  for (const d of (process.env.PATH ?? '').split(':')) {
    if (!d) continue;
    const p = path.join(d, 'xz');
    try {
      const st = statSync(p);
      if (st.isFile() && st.mode & 0o111) return p;
    } catch {
      // not here
    }
  }
  return undefined;
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

async function decompressed(tarball: string, total: number, onRead: (n: number) => void, noHostXz: boolean) {
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onRead(chunk.length);
      cb(null, chunk);
    },
  });
  const input = createReadStream(tarball, { highWaterMark: 1 << 20 }).pipe(counter);
  const xz = noHostXz ? undefined : hostXz();
  if (xz) {
    const child = spawn(xz, ['-dc', '-T0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    input.pipe(child.stdin);
    child.stdin.on('error', () => {}); // xz may exit early on corrupt input; its exit status says why
    const exited = new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`xz -d exited with ${code}: ${stderr.trim()}`))));
    });
    exited.catch(() => {});
    return { stream: child.stdout as Readable, done: exited, kill: () => child.kill('SIGKILL'), via: 'xz' as const };
  }
  // Pure fallback: xz compiled to WebAssembly, so hosts without xz-utils still bootstrap.
  const { XzReadableStream } = await import('xz-decompress');
  const web = new XzReadableStream(Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>);
  const stream = Readable.fromWeb(web as unknown as import('node:stream/web').ReadableStream<Uint8Array>);
  void total;
  return { stream, done: Promise.resolve(), kill: () => stream.destroy(), via: 'wasm' as const };
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
  let loc: Location = target.startsWith('/')
    ? { store: [] }
    : { tree: [...from] };
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
  const src = await decompressed(opts.tarball, total, (n) => {
    received += n;
    report();
  }, opts.noHostXz ?? false);

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
    for await (const chunk of src.stream) {
      if (failure) break;
      if (!parser.write(chunk as Buffer)) await new Promise((r) => parser.once('drain', r));
    }
    if (!failure) {
      parser.end();
      await parsed;
      await src.done;
      for (const close of ex.pending) close(); // every file has ended by now; this only asserts it
    }
  } catch (e) {
    failure ??= e;
  }
  if (failure) {
    src.kill();
    for (const close of ex.pending) {
      try {
        close();
      } catch {
        // already closed
      }
    }
    await removeTree(partial);
    if (failure instanceof Refusal) {
      throw new RelonixError(`refusing to unpack ${opts.tarball}: ${failure.message}`, {
        kind: 'integrity',
        hint: 'this is not a well-formed Nix release tarball; fetch the official one (releases.nixos.org) and check its sha256',
      });
    }
    if (failure instanceof RelonixError) throw failure;
    throw new RelonixError(`could not unpack ${opts.tarball}: ${errorMessage(failure)}`, {
      kind: 'integrity',
      hint: 'the file is damaged or not a .tar.xz; delete it and download it again',
      cause: failure,
    });
  }
  try {
    checkAllLinks(partial);
  } catch (e) {
    await removeTree(partial);
    if (e instanceof Refusal) {
      throw new RelonixError(`refusing to unpack ${opts.tarball}: ${e.message}`, {
        kind: 'integrity',
        hint: 'this is not a well-formed Nix release tarball; fetch the official one (releases.nixos.org) and check its sha256',
      });
    }
    throw e;
  }
  if (ex.entries === 0) {
    await removeTree(partial);
    throw new RelonixError(`${opts.tarball} holds no files`, { kind: 'integrity', hint: 'download the tarball again' });
  }
  let root: string;
  try {
    root = await findRoot(partial);
  } catch (e) {
    await removeTree(partial);
    throw e;
  }
  await fs.rename(partial, dest);
  report();
  return { root: path.join(dest, path.basename(root)), via: src.via };
}
