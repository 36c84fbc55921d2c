// src/codec/: the compressions caches and tarballs use (xz, zstd, with xxh64 for zstd's checksums),
// through the host's programs when it has them and pure decoders when it does not.
//
// The host's xz and zstd, when it has them: native and several times faster than the pure decoders
// in xz.ts and zstd.ts, which stand in when they are missing or do not work (host-filter.ts).
// Looked up once per PATH.
import { accessSync, constants as C, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

export type HostTool = 'xz' | 'zstd';

/** Set to 1, these hide a host tool (tests of the pure decoders). */
const HIDE: Record<HostTool, string> = { xz: 'RELONIX_NO_HOST_XZ', zstd: 'RELONIX_NO_HOST_ZSTD' };

const found = new Map<string, string | null>();
/** programs that failed where the built-in decoder did not: not taken again by this process */
const broken = new Set<string>();

function onPath(name: string, dirs: string): string | null {
  for (const dir of dirs.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, C.X_OK);
      // busybox's applet is not the program: its xz only decodes, and refuses the -T of a bootstrap
      // ("invalid option"), which read as a corrupt tarball; a real one later on PATH is taken instead
      if (path.basename(realpathSync(p)) === 'busybox') continue;
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** The variable that, set to 1, hides the host's program. */
export function hideVariable(name: HostTool): string {
  return HIDE[name];
}

/** Whether the user hid the host's program (RELONIX_NO_HOST_XZ=1, RELONIX_NO_HOST_ZSTD=1). */
export function hiddenTool(name: HostTool): boolean {
  return process.env[HIDE[name]] === '1';
}

/** The host's program, or null when PATH has none (or it is hidden). */
export function hostTool(name: HostTool): string | null {
  if (hiddenTool(name)) return null;
  const dirs = process.env.PATH ?? '/usr/bin:/bin';
  const memo = `${name}\0${dirs}`;
  let hit = found.get(memo);
  if (hit === undefined) {
    hit = onPath(name, dirs);
    found.set(memo, hit);
  }
  return hit && !broken.has(hit) ? hit : null;
}

/**
 * A program that failed where it should not have (on a stream the built-in decoder then read, on a
 * sample to compress): this process passes it over from now on, and says so once, with what it
 * printed and what relonix does `instead`.
 */
export function markBroken(name: HostTool, bin: string, why: string, instead = `relonix decodes ${name} itself, more slowly`): void {
  if (broken.has(bin)) return;
  broken.add(bin);
  process.stderr.write(
    `relonix: the host's ${name} (${bin}) does not work here (${firstLine(why)}): ${instead}; repair it or take it off PATH (or set ${HIDE[name]}=1)\n`,
  );
}

/** The first line of what a program printed, for a message. */
export function firstLine(printed: string): string {
  return printed.split('\n')[0]!.trim() || 'it failed';
}

/** The options relonix compresses with, xz and zstd alike: one thread, so publishing runs several. */
export function encoderArgs(level: number): string[] {
  return ['-c', '-q', '-T1', `-${level}`];
}

export function hostXz(): string | null {
  return hostTool('xz');
}

export function hostZstd(): string | null {
  return hostTool('zstd');
}
