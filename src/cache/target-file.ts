// A cache in a directory (file://). Nothing relonix does to it reaches outside it: every key's
// directory is resolved, symlinks included, and must lie inside the cache's own real directory;
// a symlink is followed only when it points inside too; only regular files are read, listed as
// objects or deleted. A listing walks real directories only and reports what it left alone.
import { constants as C, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RelonixError } from '../util/errors.ts';
import { copyFileAtomic, isTempName, writeFileAtomic } from '../util/fs.ts';
import type { CacheObject, CacheTarget } from './target.ts';

/** An object of a file cache that leads out of it, or that is no regular file: never followed, never deleted. */
export function notInCache(url: string, key: string, why: string): RelonixError {
  return new RelonixError(`${url}/${key} ${why}: relonix reads, writes and deletes only regular files inside the cache directory`, {
    kind: 'usage',
    hint: 'replace it with the file itself, or move the cache to where its files really are',
  });
}

const isMissing = (e: unknown) => ['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '');

async function realOrMissing(p: string): Promise<string | undefined> {
  return fs.realpath(p).catch((e) => (isMissing(e) ? undefined : Promise.reject(e)));
}

function within(dir: string, p: string): boolean {
  return p === dir || p.startsWith(dir + path.sep);
}

export class FileTarget implements CacheTarget {
  readonly root: string;
  constructor(readonly url: string) {
    try {
      this.root = path.resolve(fileURLToPath(url.split('?')[0]!));
    } catch {
      throw badFileCacheUrl(url);
    }
  }

  /** The cache directory with its symlinks resolved; undefined while it does not exist. */
  private async realRoot(): Promise<string | undefined> {
    return realOrMissing(this.root);
  }

  /**
   * Where `key` lives: its directory resolved, symlinks and all, and checked to be inside the cache.
   * Undefined when that directory does not exist and `create` is not set.
   */
  private async place(key: string, create = false): Promise<string | undefined> {
    const p = path.resolve(this.root, key);
    if (!p.startsWith(this.root + path.sep)) throw notInCache(this.url, key, 'names a path outside the cache');
    if (create) await fs.mkdir(this.root, { recursive: true });
    const root = await this.realRoot();
    if (!root) return undefined;
    const dir = path.dirname(p);
    // the deepest directory on the way that exists (the cache itself at least): a new one goes under it
    let existing = dir;
    let real = await realOrMissing(existing);
    while (real === undefined) {
      existing = path.dirname(existing);
      real = await realOrMissing(existing);
    }
    if (!within(root, real)) throw notInCache(this.url, key, `is under a symlink to ${real}, outside the cache`);
    if (existing !== dir) {
      if (!create) return undefined;
      await fs.mkdir(dir, { recursive: true });
      real = await fs.realpath(dir);
      if (!within(root, real)) throw notInCache(this.url, key, `is under a symlink to ${real}, outside the cache`);
    }
    return path.join(real, path.basename(p));
  }

  /** The regular file behind `key` (a symlink to one inside the cache is followed), or undefined. */
  private async file(key: string): Promise<{ path: string; st: Stats } | undefined> {
    const p = await this.place(key);
    if (!p) return undefined;
    let st = await fs.lstat(p).catch((e) => (isMissing(e) ? undefined : Promise.reject(e)));
    if (!st) return undefined;
    let real = p;
    if (st.isSymbolicLink()) {
      real = await fs.realpath(p).catch(() => '');
      const root = await this.realRoot();
      if (!real || !root || !within(root, real)) throw notInCache(this.url, key, 'is a symlink to outside the cache');
      st = await fs.lstat(real);
    }
    if (!st.isFile()) throw notInCache(this.url, key, 'is not a regular file');
    return { path: real, st };
  }

  async has(key: string) {
    return (await this.file(key)) !== undefined;
  }
  async stat(key: string) {
    const f = await this.file(key);
    return f && { size: f.st.size };
  }
  async get(key: string) {
    const f = await this.file(key);
    return f && fs.readFile(f.path);
  }
  async openRead(key: string) {
    const f = await this.file(key);
    if (!f) return undefined;
    // opened here, so a missing object is an answer rather than a stream error later
    const fh = await fs.open(f.path, C.O_RDONLY | C.O_NOFOLLOW);
    return fh.createReadStream({ highWaterMark: 1 << 20 });
  }
  async localFile(key: string) {
    return (await this.file(key))?.path;
  }
  // a reader (or a kill) never sees half an object: both go through a temporary and a rename, which
  // replaces a symlink at the name rather than writing where it points
  async put(key: string, data: Buffer) {
    await writeFileAtomic((await this.place(key, true))!, data);
  }
  async putFile(key: string, file: string, size: number) {
    await copyFileAtomic(file, (await this.place(key, true))!, size);
  }
  async delete(key: string) {
    const p = await this.place(key);
    const st = p && (await fs.lstat(p).catch((e) => (isMissing(e) ? undefined : Promise.reject(e))));
    if (!p || !st) return;
    if (!st.isFile()) throw notInCache(this.url, key, st.isSymbolicLink() ? 'is a symlink' : 'is not a regular file');
    await fs.unlink(p);
  }
  /** Every regular file under the cache, in real directories only; symlinks and others are reported, not followed. */
  async list(): Promise<CacheObject[]> {
    const out: CacheObject[] = [];
    const walk = async (dir: string, rel: string) => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch((e) => (isMissing(e) && rel === '' ? [] : Promise.reject(e)));
      for (const e of entries) {
        if (isTempName(e.name) || e.name.startsWith('.')) continue;
        const key = rel + e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), `${key}/`);
        else if (e.isFile()) {
          const st = await fs.lstat(path.join(dir, e.name));
          out.push({ key, size: st.size, modified: st.mtime });
        } else out.push({ key, size: 0, notRegular: e.isSymbolicLink() ? 'a symlink' : 'not a regular file' });
      }
    };
    const root = await this.realRoot();
    if (root) await walk(root, '');
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

/** A file:// cache URL that names no local directory (a host, a bad escape). */
export function badFileCacheUrl(url: string): RelonixError {
  return new RelonixError(`${url} is not a file URL of a local directory`, {
    kind: 'usage',
    hint: 'write file:///path/to/dir (three slashes: no host), or the path itself',
  });
}
