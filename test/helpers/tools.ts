// The host's programs the integration tests use as peers and oracles (Debian's nix, readelf,
// patchelf, gcc, zstd ...): found, or failing the test loudly with the package that brings them,
// and run with their output kept for the assertions.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

/** The Debian package of each tool the tests ask for by name, as .ci/run installs them. */
const PACKAGES: Record<string, string> = {
  busybox: 'busybox-static',
  gcc: 'gcc',
  mkfifo: 'coreutils',
  mknod: 'coreutils',
  nginx: 'nginx-light',
  nix: 'nix-bin',
  'nix-hash': 'nix-bin',
  'nix-instantiate': 'nix-bin',
  'nix-store': 'nix-bin',
  nm: 'binutils',
  npm: 'npm',
  objcopy: 'binutils',
  patchelf: 'patchelf',
  python3: 'python3',
  readelf: 'binutils',
  setpriv: 'util-linux',
  tar: 'tar',
  xz: 'xz-utils',
  zstd: 'zstd',
};

const packageOf = (name: string): string => PACKAGES[name] ?? (name.startsWith('qemu-') ? 'qemu-user-static' : name);

/** The path of `name` (sbin included, where nginx lives); a missing tool fails the test that needs it. */
export function requireTool(name: string, pkg: string = packageOf(name)): string {
  const r = spawnSync('sh', ['-c', `PATH="$PATH:/usr/sbin:/sbin" command -v ${name}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${name} is required by this test (apt-get install ${pkg}); .ci/run installs it`);
  return r.stdout.trim();
}

export function requireRoot(why: string): void {
  if (process.getuid?.() !== 0) throw new Error(`this test must run as root (${why}); CI runs as root`);
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a host program to its end; its status and output, whatever they are. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000, ...opts });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Compile with gcc; a failure fails the test with gcc's message. */
export function gcc(args: string[]): void {
  const r = run('gcc', args);
  assert.equal(r.status, 0, `gcc ${args.join(' ')}: ${r.stderr}`);
}
