import { promises as fs } from 'node:fs';
import path from 'node:path';
import { nixEnvironment } from '../../prefix/environment.ts';
import type { Layout } from '../../prefix/layout.ts';
import { installProfile } from '../../prefix/profile.ts';
import { runNix } from '../../prefix/tools.ts';
import { narDigest } from '../../store/nar/write.ts';
import { formatNarHashLike, formatRegInfo, parseRegInfo, type RegInfo } from '../../store/reginfo.ts';
import { rewriteLinkTarget } from '../../store/relocate-text.ts';
import type { PathResult } from '../../store/relocate-tree.ts';
import { writeFileAtomic } from '../../util/fs.ts';
import { pool } from '../../util/pool.ts';
import { detailOf, type Stage, type UnpackDetail } from '../stage.ts';
import { TARBALL_STORE } from '../tarball.ts';
import { moved, RELOCATE_WORK } from './relocate.ts';
import { TARBALL_REGINFO } from './unpack.ts';

const HINT = 're-run relonix bootstrap to retry from stage register; relonix status shows what is done';

/** Pure: a tarball's registration records moved to the new store dir (hashes still the old ones). */
export function relocateRecords(records: RegInfo[], from: string, to: string): RegInfo[] {
  const mv = (p: string) => (p === '' ? p : (rewriteLinkTarget(p, from, to) ?? p));
  return records.map((r) => ({ ...r, path: mv(r.path), deriver: mv(r.deriver), references: r.references.map(mv) }));
}

export interface RegisterInput {
  records: RegInfo[];
  /** store paths (new store dir) whose content changed: only their NAR hash and size are recomputed */
  changed: Set<string>;
  /** NAR hash (hex) and size already computed by relocation, by store path */
  known?: Map<string, { narHash: string; narSize: number }>;
  nix: string;
  cacert?: string;
  /** the Nix and CA bundle an earlier bootstrap put in the profile, which these replace */
  replaces?: string[];
}

/**
 * Recomputes what relocation changed, loads the records into the new store's database with the
 * relocated nix-store, and installs Nix and the CA bundle into the default profile.
 */
export async function applyRegister(l: Layout, input: RegisterInput, onProgress?: (text: string) => void): Promise<{ paths: number; rehashed: number }> {
  let done = 0;
  const known = input.known ?? new Map();
  const changed = input.records.filter((r) => input.changed.has(r.path) && !known.has(r.path));
  const digests = await pool(changed, 4, async (r) => {
    const d = await narDigest(r.path);
    onProgress?.(`hashed ${++done}/${changed.length} changed paths`);
    return [r.path, d] as const;
  });
  const byPath = new Map<string, { hash: Buffer; size: number }>(digests);
  for (const [p, k] of known) if (input.changed.has(p)) byPath.set(p, { hash: Buffer.from(k.narHash, 'hex'), size: k.narSize });
  const records = input.records.map((r) => {
    const d = byPath.get(r.path);
    return d ? { ...r, narHash: formatNarHashLike(d.hash, r.narHash), narSize: d.size } : r;
  });
  const reginfo = formatRegInfo(records);
  await writeFileAtomic(path.join(l.relonixDir, 'reginfo'), reginfo);
  const env = nixEnvironment(l, { nix: input.nix, cacert: input.cacert });
  await fs.mkdir(l.stateDir, { recursive: true });
  onProgress?.(`loading ${records.length} paths into the database`);
  await runNix(path.join(input.nix, 'bin', 'nix-store'), ['--load-db'], { env, input: reginfo, hint: HINT });
  onProgress?.('installing Nix into the default profile');
  await installProfile(l, input.nix, [input.nix, ...(input.cacert ? [input.cacert] : [])], env, input.replaces);
  return { paths: records.length, rehashed: byPath.size };
}

/**
 * From relocation's per-path markers: the paths it left byte-for-byte as the tarball had them (their
 * NAR hash still holds) and the NAR hashes it computed while writing the others.
 */
async function relocationResults(
  workDir: string,
  storeDir: string,
): Promise<{ unchanged: Set<string>; known: Map<string, { narHash: string; narSize: number }> }> {
  const unchanged = new Set<string>();
  const known = new Map<string, { narHash: string; narSize: number }>();
  const dir = path.join(workDir, 'paths');
  let names: string[] = [];
  try {
    names = await fs.readdir(dir);
  } catch {
    return { unchanged, known };
  }
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      const r = JSON.parse(await fs.readFile(path.join(dir, n), 'utf8')) as PathResult;
      if (!r.changed) unchanged.add(path.join(storeDir, r.basename));
      else if (r.narHash && r.narSize !== undefined) known.set(path.join(storeDir, r.basename), { narHash: r.narHash, narSize: r.narSize });
    } catch {
      // unreadable marker: re-hash that path
    }
  }
  return { unchanged, known };
}

export const registerStage: Stage = {
  name: 'register',
  title: 'Register the closure and install the profile',
  inputs: () => null,
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    const u = detailOf<UnpackDetail>(s, 'unpack');
    const regCopy = path.join(l.relonixDir, TARBALL_REGINFO);
    const records = relocateRecords(parseRegInfo(await fs.readFile(regCopy, 'utf8'), regCopy), TARBALL_STORE, l.storeDir);
    const { unchanged, known } = await relocationResults(path.join(l.relonixDir, RELOCATE_WORK), l.storeDir);
    const changed = new Set(records.map((r) => r.path).filter((p) => !unchanged.has(p)));
    const nix = moved(u.nixPath, l.storeDir);
    const cacert = u.cacertPath ? moved(u.cacertPath, l.storeDir) : undefined;
    const replaces = [s.nix, s.cacert].filter((p) => p !== undefined);
    const r = await applyRegister(l, { records, changed, known, nix, cacert, replaces }, progress);
    return {
      patch: { nix, cacert, nixSource: 'tarball' },
      summary: `${r.paths} paths (${r.rehashed} with new NAR hashes), profile ${path.relative(l.prefix, l.profile)}`,
    };
  },
};
