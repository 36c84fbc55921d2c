import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runTool } from '../util/spawn.ts';
import { pool } from '../util/pool.ts';
import type { Layout } from '../store/layout.ts';
import { narDigest } from '../store/nar/write.ts';
import { formatNarHashLike, formatRegInfo, type RegInfo } from '../store/reginfo.ts';
import { rewriteLinkTarget } from '../store/relocate-text.ts';
import { exists, writeFileAtomic } from '../util/fs.ts';
import { RelonixError } from '../util/errors.ts';
import { nixEnvironment } from './nixenv.ts';

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
 * Recomputes what relocation changed, loads the records into the new store's database with the
 * relocated nix-store, and installs Nix and the CA bundle into the default profile.
 */
export async function applyRegister(
  l: Layout,
  input: RegisterInput,
  onProgress?: (text: string) => void,
): Promise<{ paths: number; rehashed: number }> {
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
  await nixTool(path.join(input.nix, 'bin', 'nix-store'), ['--load-db'], env, reginfo, 'register');
  onProgress?.('installing Nix into the default profile');
  await installProfile(l, input.nix, [input.nix, ...(input.cacert ? [input.cacert] : [])], env);
  return { paths: records.length, rehashed: byPath.size };
}

/** Points the default profile at exactly these store paths (a real Nix profile generation). */
export async function installProfile(l: Layout, nix: string, paths: string[], env: NodeJS.ProcessEnv): Promise<void> {
  await fs.mkdir(path.dirname(l.profile), { recursive: true });
  // -i of store paths builds a user environment with builtin:buildenv, like the official installer
  const nixEnv = path.join(nix, 'bin', 'nix-env');
  // a fresh prefix has no profile to ask about (asking costs a Nix start)
  const current = (await exists(l.profile)) ? await nixTool(nixEnv, ['--profile', l.profile, '-q', '--out-path'], env, undefined, 'register').catch(() => '') : '';
  const have = new Set(current.split('\n').map((line) => line.trim().split(/\s+/).pop()).filter(Boolean));
  if (paths.every((p) => have.has(p)) && have.size === paths.length) return;
  // -r replaces whatever Nix or bundle the profile had, so it holds exactly these
  await nixTool(nixEnv, ['--profile', l.profile, '-i', '-r', ...paths], env, undefined, 'register');
}

export async function nixTool(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input: string | undefined,
  stage: string,
): Promise<string> {
  const r = await runTool(bin, args, env, input);
  if (r.code !== 0) {
    throw new RelonixError(`${path.basename(bin)} ${args.join(' ')} failed in stage ${stage} (exit ${r.code ?? r.signal}):\n${r.all.trim()}`, {
      kind: 'failure',
      hint: `re-run relonix bootstrap to retry from stage ${stage}; relonix status shows what is done`,
    });
  }
  return r.stdout;
}
