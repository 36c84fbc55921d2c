// src/cache/: binary caches as Nix reads them: narinfo, signing keys, targets (file, http, s3),
// push (publish), substitute (restore), gc, the manifest naming each system's Nix.
//
// Where a binary cache lives: a directory (file://), an HTTP origin that takes PUT (WebDAV, as
// Nix's own http store writes) or an S3 bucket (SigV4, path-style against an endpoint). One small
// interface so publish, restore and gc never care which.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RelonixError } from '../util/errors.ts';
import { copyFileAtomic, listDir, writeFileAtomic } from '../util/fs.ts';
import type { CacheTarget } from './target.ts';
import { HttpTarget, type TargetOptions } from './target-http.ts';
import { S3Target } from './target-s3.ts';

export type { CacheTarget } from './target.ts';
export type { TargetOptions } from './target-http.ts';

export function openTarget(url: string, opts: TargetOptions = {}): CacheTarget {
  if (url.startsWith('file://')) return new FileTarget(url);
  if (url.startsWith('http://') || url.startsWith('https://')) return new HttpTarget(url, opts);
  if (url.startsWith('s3://')) return new S3Target(url);
  if (url.startsWith('/')) return new FileTarget(`file://${url}`);
  throw new RelonixError(`unsupported cache URL ${url}`, { kind: 'usage', hint: 'use file:///dir, http(s)://host/path or s3://bucket?endpoint=…&region=…' });
}

class FileTarget implements CacheTarget {
  readonly root: string;
  constructor(readonly url: string) {
    this.root = fileURLToPath(url.split('?')[0]!);
  }
  private p(key: string): string {
    const p = path.resolve(this.root, key);
    if (!p.startsWith(this.root + path.sep)) throw new Error(`cache key ${key} leaves the cache directory`);
    return p;
  }
  async has(key: string) {
    try {
      await fs.access(this.p(key));
      return true;
    } catch {
      return false;
    }
  }
  async get(key: string) {
    try {
      return await fs.readFile(this.p(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  async openRead(key: string) {
    const p = this.p(key);
    try {
      // opened here, so a missing object is an answer rather than a stream error later
      const fh = await fs.open(p, 'r');
      return fh.createReadStream({ highWaterMark: 1 << 20 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  // a reader (or a kill) never sees half an object: both go through a temporary and a rename
  async put(key: string, data: Buffer) {
    await writeFileAtomic(this.p(key), data);
  }
  async putFile(key: string, file: string, size: number) {
    await copyFileAtomic(file, this.p(key), size);
  }
  async delete(key: string) {
    await fs.rm(this.p(key), { force: true });
  }
  async list() {
    const out: string[] = [];
    const walk = async (dir: string, rel: string) => {
      for (const n of await listDir(dir)) {
        if (n.startsWith('.')) continue;
        const st = await fs.stat(path.join(dir, n));
        if (st.isDirectory()) await walk(path.join(dir, n), `${rel}${n}/`);
        else out.push(rel + n);
      }
    };
    await walk(this.root, '');
    return out.sort();
  }
}
