import { promises as fs } from 'node:fs';
import path from 'node:path';
import { nixEnvironment } from '../../prefix/environment.ts';
import type { Layout } from '../../prefix/layout.ts';
import { runNix } from '../../prefix/tools.ts';
import { narDigest } from '../../store/nar/write.ts';
import { formatNarHashLike, formatRegInfo, parseRegInfo, type RegInfo } from '../../store/reginfo.ts';
import { rewriteLinkTarget } from '../../store/relocate-text.ts';
import { relocationResults } from '../../store/relocate-tree.ts';
import { exists, writeFileAtomic } from '../../util/fs.ts';
import { pool } from '../../util/pool.ts';
import { detailOf, replacedBy, type Stage } from '../stage.ts';
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
}

/**
 * Recomputes what relocation changed and loads the records into the new store's database with the
 * relocated nix-store (the verify stage installs Nix into the default profile, beside its checks).
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
  return { paths: records.length, rehashed: byPath.size };
}

export const registerStage: Stage<'register'> = {
  name: 'register',
  title: 'Register the closure',
  inputs: () => null,
  // the tarball's records, kept by the unpack stage
  lost: async (ctx) => ((await exists(path.join(ctx.layout.relonixDir, TARBALL_REGINFO))) ? undefined : 'unpack'),
  run: async (ctx, s, progress) => {
    const l = ctx.layout;
    const u = detailOf(s, 'unpack');
    const regCopy = path.join(l.relonixDir, TARBALL_REGINFO);
    const records = relocateRecords(parseRegInfo(await fs.readFile(regCopy, 'utf8'), regCopy), TARBALL_STORE, l.storeDir);
    // a path relocation left byte for byte as the tarball had it keeps its NAR hash; the others have
    // the hash relocation took of what it wrote, or get one now
    const unchanged = new Set<string>();
    const known = new Map<string, { narHash: string; narSize: number }>();
    for (const r of (await relocationResults(path.join(l.relonixDir, RELOCATE_WORK))).values()) {
      const p = path.join(l.storeDir, r.basename);
      if (!r.changed) unchanged.add(p);
      else if (r.narHash && r.narSize !== undefined) known.set(p, { narHash: r.narHash, narSize: r.narSize });
    }
    const changed = new Set(records.map((r) => r.path).filter((p) => !unchanged.has(p)));
    const nix = moved(u.nixPath, l.storeDir);
    const cacert = u.cacertPath ? moved(u.cacertPath, l.storeDir) : undefined;
    const r = await applyRegister(l, { records, changed, known, nix, cacert }, progress);
    return {
      patch: { nix, cacert, nixSource: 'tarball', replaces: replacedBy(s, [nix, cacert]), registered: records.map((r) => r.path) },
      summary: `${r.paths} paths (${r.rehashed} with new NAR hashes)`,
    };
  },
};
