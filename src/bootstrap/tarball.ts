// What an unpacked release tarball says about itself: the two roots named by `install`, and the
// registration records in `.reginfo`.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseRegInfo, type RegInfo } from '../store/reginfo.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';

/** The store dir every official release tarball is built for. */
export const TARBALL_STORE = '/nix/store';

export interface TarballInfo {
  version: string;
  system: string;
  /** store path of Nix itself, as the tarball names it (under /nix/store) */
  nixPath: string;
  /** store path of the CA bundle package */
  cacertPath: string;
  reginfo: RegInfo[];
}

const HINT = 'use an official Nix binary tarball (nix-<version>-<system>.tar.xz from releases.nixos.org)';

/** `nix-2.24.10-x86_64-linux` → version and system; systems are `<arch>-<os>`. */
export function parseTarballDirName(name: string): { version: string; system: string } | undefined {
  const m = /^nix-(\d[^-]*(?:-[^-]+)*?)-([a-z0-9_]+-(?:linux|darwin))$/.exec(name);
  return m ? { version: m[1]!, system: m[2]! } : undefined;
}

/** A shell assignment `name="value"` (or unquoted) on a line of its own. */
function assignment(script: string, name: string): string | undefined {
  const m = new RegExp(`^\\s*${name}=(?:"([^"\\n]*)"|'([^'\\n]*)'|(\\S+))\\s*$`, 'm').exec(script);
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

export async function readTarballInfo(root: string): Promise<TarballInfo> {
  const where = path.basename(root);
  const parsed = parseTarballDirName(where);
  if (!parsed) {
    throw new RelonixError(`the tarball's top directory "${where}" is not named nix-<version>-<system>`, { kind: 'integrity', hint: HINT });
  }
  let install: string;
  try {
    install = await fs.readFile(path.join(root, 'install'), 'utf8');
  } catch {
    throw new RelonixError(`${where}/install is missing from the tarball`, { kind: 'integrity', hint: HINT });
  }
  const nixPath = assignment(install, 'nix');
  const cacertPath = assignment(install, 'cacert');
  for (const [name, v] of [
    ['nix', nixPath],
    ['cacert', cacertPath],
  ] as const) {
    if (!v || !/^\/[^\s]*\/[0-9a-df-np-sv-z]{32}-[^/\s]+$/.test(v)) {
      throw new RelonixError(`${where}/install has no ${name}="<store path>" line${v ? ` (found "${v}")` : ''}`, {
        kind: 'integrity',
        hint: HINT,
      });
    }
  }
  let text: string;
  try {
    text = await fs.readFile(path.join(root, '.reginfo'), 'utf8');
  } catch {
    throw new RelonixError(`${where}/.reginfo is missing from the tarball`, { kind: 'integrity', hint: HINT });
  }
  let reginfo: RegInfo[];
  try {
    reginfo = parseRegInfo(text, `${where}/.reginfo`);
  } catch (e) {
    throw new RelonixError(`${where}/.reginfo cannot be read: ${errorMessage(e)}`, { kind: 'integrity', hint: HINT });
  }
  const known = new Set(reginfo.map((r) => r.path));
  for (const p of [nixPath!, cacertPath!]) {
    if (!known.has(p)) {
      throw new RelonixError(`${where}/install names ${p}, which .reginfo does not register`, { kind: 'integrity', hint: HINT });
    }
  }
  for (const r of reginfo) {
    try {
      await fs.lstat(path.join(root, 'store', path.basename(r.path)));
    } catch {
      throw new RelonixError(`${where}/.reginfo registers ${r.path}, which is not in store/`, { kind: 'integrity', hint: HINT });
    }
  }
  return { version: parsed.version, system: parsed.system, nixPath: nixPath!, cacertPath: cacertPath!, reginfo };
}
