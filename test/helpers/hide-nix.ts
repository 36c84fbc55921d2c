// A host that never had Nix: what the tests run as a user runs in a private mount namespace where
// every /usr/bin/nix* is a tripwire (it records its use and exits 127) and /usr/libexec/nix and
// /usr/lib/nix are empty. The test machine's own Nix (Debian's nix-bin, there for the fixture and
// the oracles) would otherwise answer the relocated Nix's compiled-in paths and hide the bug.
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where tripwires record their use; `npm test` sets it and fails the run when it is not empty. */
export const TRIPWIRE_LOG = process.env.RELONIX_TRIPWIRE_LOG || path.join(os.tmpdir(), `relonix-tripwire-${process.pid}.log`);

const HIDDEN_DIRS = ['/usr/libexec/nix', '/usr/lib/nix'];

function tripwire(log: string): string {
  const dir = path.join(os.tmpdir(), `relonix-tripwire-${process.pid}`);
  const file = path.join(dir, `${path.basename(log)}.sh`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    // the process's own copy: gone with it, as the namespaces that bind it are
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      file,
      `#!/bin/sh\necho "pid $$ ran $0 $*" >> '${log}'\necho "tripwire: the host's Nix ($0) was used; a host without Nix has none" >&2\nexit 127\n`,
      { mode: 0o755 },
    );
  }
  // the unprivileged uid appends to it too
  if (!existsSync(log)) writeFileSync(log, '');
  chmodSync(log, 0o666);
  return file;
}

/** The host's Nix programs: every /usr/bin/nix* (the legacy names are symlinks to /usr/bin/nix). */
export function hostNixPrograms(): string[] {
  return readdirSync('/usr/bin')
    .filter((n) => n.startsWith('nix'))
    .map((n) => path.join('/usr/bin', n));
}

/**
 * argv that runs `argv` with the host's Nix hidden. Needs root (a mount namespace); it keeps the
 * pid (unshare and sh exec), so signals sent to it reach the command.
 */
export function withoutHostNix(argv: string[], log: string = TRIPWIRE_LOG): string[] {
  if (process.getuid?.() !== 0) {
    throw new Error('hiding the host Nix needs root (a private mount namespace); run the tests as root, as CI does');
  }
  const wire = tripwire(log);
  const script = [
    'set -e',
    `for f in ${hostNixPrograms().join(' ')}; do mount --bind '${wire}' "$f"; done`,
    ...HIDDEN_DIRS.map((d) => `[ ! -d ${d} ] || mount -t tmpfs -o ro,size=4k,mode=755 relonix-no-nix ${d}`),
    'exec "$@"',
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'hide-nix', ...argv];
}
