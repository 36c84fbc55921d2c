// Where the tests find the checkout and relonix, and the throwaway directories and prefixes they
// make under /tmp, with the one way to remove them again (store dirs are read-only).
import { execFileSync } from 'node:child_process';
import { promises as fs, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
/** The launcher users run after `npm ci`; it runs the prebuilt bundle `npm test` makes first. */
export const RELONIX = path.join(REPO, 'bin', 'relonix.js');

/** A fresh directory under /tmp, named after the test. */
export function tempDir(tag: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `relonix-${tag}-`));
}

/** A fresh prefix directory under /tmp owned by `uid` (root's when undefined). */
export async function prefixFor(uid: number | undefined, tag: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `relonix-${tag}-`));
  if (uid !== undefined) await fs.chown(dir, uid, uid);
  return path.join(dir, 'nix');
}

/** Store dirs are read-only; make a test prefix removable, then remove it. */
export async function removePrefix(dir: string): Promise<void> {
  execFileSync('sh', ['-c', `chmod -R u+w "${dir}" 2>/dev/null; rm -rf "${dir}"`]);
}

/** The prefixes a test file makes, each in a directory of its own, removed together in its after(). */
export interface PrefixList {
  add(uid: number | undefined, tag: string): Promise<string>;
  removeAll(): Promise<void>;
}

export function prefixList(): PrefixList {
  const tops: string[] = [];
  return {
    async add(uid, tag) {
      const prefix = await prefixFor(uid, tag);
      tops.push(path.dirname(prefix));
      return prefix;
    },
    async removeAll() {
      for (const top of tops.splice(0)) await removePrefix(top);
    },
  };
}

/**
 * A fresh prefix of 8 bytes (`/tmp/xyz`), owned by `uid`: its default store dir `<prefix>/s` is as
 * long as /nix/store, as `/tmp/nix/s` is for the default prefix.
 */
export async function shortPrefix(uid: number): Promise<string> {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (;;) {
    const dir = `/tmp/q${Array.from({ length: 2 }, () => chars[Math.floor(Math.random() * chars.length)]).join('')}`;
    try {
      await fs.mkdir(dir);
    } catch {
      continue;
    }
    await fs.chown(dir, uid, uid);
    return dir;
  }
}
