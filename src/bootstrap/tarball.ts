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
    throw notAReleaseTarball(`the tarball's top directory "${where}" is not named nix-<version>-<system>`);
  }
  let install: string;
  try {
    install = await fs.readFile(path.join(root, 'install'), 'utf8');
  } catch {
    throw notAReleaseTarball(`${where}/install is missing from the tarball`);
  }
  const nixPath = assignment(install, 'nix');
  const cacertPath = assignment(install, 'cacert');
  for (const [name, v] of [
    ['nix', nixPath],
    ['cacert', cacertPath],
  ] as const) {
    if (!v || !/^\/[^\s]*\/[0-9a-df-np-sv-z]{32}-[^/\s]+$/.test(v)) {
      throw notAReleaseTarball(`${where}/install has no ${name}="<store path>" line${v ? ` (found "${v}")` : ''}`);
    }
  }
  let text: string;
  try {
    text = await fs.readFile(path.join(root, '.reginfo'), 'utf8');
  } catch {
    throw notAReleaseTarball(`${where}/.reginfo is missing from the tarball`);
  }
  let reginfo: RegInfo[];
  try {
    reginfo = parseRegInfo(text, `${where}/.reginfo`);
  } catch (e) {
    throw notAReleaseTarball(`${where}/.reginfo cannot be read: ${errorMessage(e)}`);
  }
  const known = new Set(reginfo.map((r) => r.path));
  for (const p of [nixPath!, cacertPath!]) {
    if (!known.has(p)) {
      throw notAReleaseTarball(`${where}/install names ${p}, which .reginfo does not register`);
    }
  }
  for (const r of reginfo) {
    try {
      await fs.lstat(path.join(root, 'store', path.basename(r.path)));
    } catch {
      throw notAReleaseTarball(`${where}/.reginfo registers ${r.path}, which is not in store/`);
    }
  }
  return { version: parsed.version, system: parsed.system, nixPath: nixPath!, cacertPath: cacertPath!, reginfo };
}

/** An unpacked tarball that is not laid out as a Nix release (its top directory, install, .reginfo). */
export function notAReleaseTarball(what: string): RelonixError {
  return new RelonixError(what, { kind: 'integrity', hint: HINT });
}
