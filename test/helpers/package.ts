// The npm package as users get it: `npm pack` of the checkout (prepack builds the bundle), then the
// tarball installed the ways users install it. Every npm call here is offline, with an empty cache
// of its own and a registry address nothing answers at: an install that wanted anything beyond the
// tarball would fail instead of quietly fetching it.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { REPO } from './paths.ts';

export interface Packed {
  tarball: string;
  /** the paths inside the package, as `npm pack --json` lists them */
  files: string[];
  /** bytes of the .tgz, and of the files it unpacks to */
  size: number;
  unpackedSize: number;
}

function npmEnv(work: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    npm_config_cache: path.join(work, 'npm-cache'),
    npm_config_registry: 'http://127.0.0.1:9/',
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
}

/** Runs npm (or npx) in `cwd` with the offline settings above; its stdout. */
export function npm(work: string, cwd: string, args: string[], cmd: 'npm' | 'npx' = 'npm'): string {
  return execFileSync(cmd, args, { cwd, env: npmEnv(work), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `npm pack` of the checkout into `work`. */
export function packCheckout(work: string): Packed {
  const [r] = JSON.parse(npm(work, REPO, ['pack', '--json', '--pack-destination', work])) as {
    filename: string;
    size: number;
    unpackedSize: number;
    files: { path: string }[];
  }[];
  return { tarball: path.join(work, r!.filename), files: r!.files.map((f) => f.path), size: r!.size, unpackedSize: r!.unpackedSize };
}

/** An empty project with the tarball installed into it, as `npm install ./relonix-*.tgz` does; its directory. */
export async function installInProject(work: string, tarball: string): Promise<string> {
  const dir = path.join(work, 'project');
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'package.json'), `${JSON.stringify({ name: 'empty-project', version: '1.0.0', private: true })}\n`);
  npm(work, dir, ['install', tarball]);
  return dir;
}

/** `npm install -g` of the tarball into a prefix of its own; the prefix. */
export function installGlobal(work: string, tarball: string): string {
  const prefix = path.join(work, 'global');
  npm(work, work, ['install', '--global', '--prefix', prefix, tarball]);
  return prefix;
}

/** Bytes of the files under `dir`. */
export async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath ?? e.path, e.name))).size;
  }
  return n;
}
