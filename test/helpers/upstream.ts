// A real upstream binary cache: Debian's Nix, as root at the machine's /nix/store, builds a test
// expression, and `nix copy` puts the outputs, signed with a key made here, in a file cache that a
// loopback HTTP server serves as cache.nixos.org serves its own. The server can be made to go down,
// and to send one file slowly with a callback half-way (to strike whoever reads it).
// Nothing is ever deleted from /nix/store here: other tests use it at the same time.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { startServer, type TestServer } from './http.ts';

/** Debian's Nix as root at /nix/store, with what a container allows and no substituters of its own. */
export function hostNix(home: string, cmd: string, args: string[]): string {
  const env = {
    PATH: '/usr/bin:/bin',
    HOME: home,
    NIX_CONFIG: 'sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command',
  };
  return execFileSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).trim();
}

export interface SlowFile {
  /** the URL path to send slowly */
  path: string;
  /** bytes a piece and ms between pieces */
  piece: number;
  everyMs: number;
  /** called once, when half the body is out */
  atHalf: () => void;
}

export interface UpstreamCache {
  dir: string;
  url: string;
  /** the public key its narinfos are signed with */
  key: string;
  secretFile: string;
  server: TestServer;
  /** while true, every connection is dropped: the upstream is down */
  down: boolean;
  slow?: SlowFile;
  close(): Promise<void>;
}

function slowly(s: SlowFile, body: Buffer, res: http.ServerResponse): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  let told = false;
  return (async () => {
    for (let off = 0; off < body.length && !res.destroyed; off += s.piece) {
      res.write(body.subarray(off, off + s.piece));
      if (!told && off + s.piece >= body.length / 2) {
        told = true;
        s.atHalf();
      }
      await new Promise((r) => setTimeout(r, s.everyMs));
    }
    res.end();
  })();
}

/** Serves `dir` (a binary cache) on loopback, with the faults above. */
export async function serveUpstream(dir: string, key: string, secretFile: string): Promise<UpstreamCache> {
  const up = { dir, key, secretFile, down: false } as UpstreamCache;
  up.server = await startServer({
    dir,
    handler: async (req, res) => {
      if (up.down) {
        req.socket.destroy();
        return true;
      }
      const s = up.slow;
      if (!s || new URL(req.url ?? '/', 'http://x').pathname !== s.path || req.method !== 'GET') return false;
      await slowly(s, await fs.readFile(path.join(dir, s.path)), res);
      return true;
    },
  });
  up.url = up.server.url;
  up.close = () => up.server.close();
  return up;
}

/**
 * Builds `attrs` of `expr` with the host's Nix as root and copies their closures into `dir`, signed
 * with a key made in `top`; returns the output path of each attribute.
 */
export async function buildUpstream(
  top: string,
  expr: string,
  attrs: string[],
  dir: string,
  compression = 'xz',
): Promise<{ out: Map<string, string>; key: string; secretFile: string }> {
  const home = path.join(top, 'root-home');
  await fs.mkdir(home, { recursive: true });
  const secretFile = path.join(top, 'upstream.secret');
  const publicFile = path.join(top, 'upstream.public');
  try {
    await fs.access(secretFile);
  } catch {
    hostNix(home, 'nix-store', ['--generate-binary-cache-key', 'upstream-test-1', secretFile, publicFile]);
  }
  const out = new Map<string, string>();
  for (const a of attrs) out.set(a, hostNix(home, 'nix-build', ['--no-out-link', expr, '-A', a]));
  hostNix(home, 'nix', ['copy', '--to', `file://${dir}?secret-key=${secretFile}&compression=${compression}`, ...out.values()]);
  return { out, key: (await fs.readFile(publicFile, 'utf8')).trim(), secretFile };
}

/** A store path under /nix/store: what a translated or relocated file must no longer name. */
export const STORE_REF = /\/nix\/store\/[0-9abcdfghijklmnpqrsvwxyz]{32}/;

/** Every file and symlink target at or under `p` that still names /nix/store/<hash>. */
export async function namingNixStore(p: string): Promise<string[]> {
  const st = await fs.lstat(p);
  if (st.isSymbolicLink()) return STORE_REF.test(await fs.readlink(p)) ? [p] : [];
  if (st.isFile()) return STORE_REF.test((await fs.readFile(p)).toString('latin1')) ? [p] : [];
  const found: string[] = [];
  for (const name of await fs.readdir(p)) found.push(...(await namingNixStore(path.join(p, name))));
  return found;
}
