import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Layout } from '../../prefix/layout.ts';
import { writeFileAtomic } from '../../util/fs.ts';
import { envScripts, writeWrappers } from '../../prefix/environment.ts';
import { detailOf, type Stage } from '../engine.ts';
import type { UnpackDetail } from './unpack.ts';
import { moved } from './relocate.ts';
import { readCgroupLimits } from '../../host/cgroup.ts';
import { planParallelism, type Parallelism } from '../../host/parallelism.ts';

export const BEGIN = '# BEGIN relonix managed block: relonix rewrites the lines up to END; add your own settings outside it';
export const END = '# END relonix managed block';

export interface ConfigureInput {
  caches: string[];
  trustedKeys: string[];
  /** cores and max-jobs for this host (host/parallelism.ts); none: Nix's defaults */
  parallelism?: Pick<Parallelism, 'cores' | 'maxJobs'>;
}

/**
 * The settings a Nix needs on a host without root or namespaces. use-sqlite-wal is always false:
 * WAL needs shared-memory mmap that breaks on NFS, overlay and 9p, a prefix under /tmp can land on
 * any of them after a restart, and a single-user store loses next to nothing with a rollback journal.
 */
export function nixConfBlock(input: ConfigureInput): string {
  const lines = [
    BEGIN,
    '# no user namespaces or chroot on such hosts',
    'sandbox = false',
    '# no root, so no build users',
    'build-users-group =',
    'use-sqlite-wal = false',
    '# caches are filled by other builders while we run: never remember a miss',
    'narinfo-cache-negative-ttl = 0',
    // nothing on cache.nixos.org is built for this store dir, so only the given caches are useful
    `substituters = ${input.caches.join(' ')}`.trimEnd(),
    `trusted-public-keys = ${input.trustedKeys.join(' ')}`.trimEnd(),
    'require-sigs = true',
    ...(input.parallelism
      ? [
          "# from this host's cgroup limits and CPU affinity when this was written; relonix build reads them afresh",
          `cores = ${input.parallelism.cores}`,
          `max-jobs = ${input.parallelism.maxJobs}`,
        ]
      : []),
    END,
  ];
  return lines.join('\n') + '\n';
}

/** Pure: the user's own lines of a nix.conf, everything outside the managed block. */
export function userConfLines(existing: string): string {
  const start = existing.indexOf(BEGIN);
  const endAt = existing.indexOf(END);
  return start !== -1 && endAt > start ? existing.slice(0, start) + existing.slice(endAt + END.length) : existing;
}

/** Pure: replaces the managed block in an existing nix.conf (or prepends it), keeping everything else. */
export function mergeNixConf(existing: string | undefined, block: string): string {
  if (!existing) return block;
  const start = existing.indexOf(BEGIN);
  const endAt = existing.indexOf(END);
  if (start !== -1 && endAt > start) {
    let after = endAt + END.length;
    if (existing[after] === '\n') after++;
    return existing.slice(0, start) + block + existing.slice(after);
  }
  // the block goes first so that the user's own lines, read later, win
  return block + (existing.startsWith('\n') ? '' : '\n') + existing;
}

export async function applyConfigure(l: Layout, input: ConfigureInput, nix?: string, cacert?: string): Promise<{ confFile: string }> {
  let existing: string | undefined;
  try {
    existing = await fs.readFile(l.confFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // the same reading relonix build makes: a host that kills builds for memory gets a max-jobs it can hold
  const parallelism = input.parallelism ?? planParallelism(await readCgroupLimits(), os.availableParallelism());
  const next = mergeNixConf(existing, nixConfBlock({ ...input, parallelism }));
  if (next !== existing) await writeFileAtomic(l.confFile, next);
  const scripts = envScripts(l, nix, cacert);
  await writeFileAtomic(l.envScript, scripts.sh);
  await writeFileAtomic(l.envScriptFish, scripts.fish);
  if (nix) await writeWrappers(l, nix);
  await fs.mkdir(path.join(l.prefix, 'home'), { recursive: true });
  await fs.mkdir(l.logDir, { recursive: true });
  await fs.mkdir(path.dirname(l.profile), { recursive: true });
  return { confFile: l.confFile };
}

export const configureStage: Stage = {
  name: 'configure',
  title: 'Write nix.conf and the environment',
  // with a tarball, the profile scripts name its Nix; a cache-only restore runs this before the
  // restore, because the first Nix to open the new database must already read use-sqlite-wal =
  // false (a database made in WAL mode cannot be opened without it)
  inputs: (ctx, s) =>
    ctx.tarball ? { caches: ctx.caches, keys: ctx.trustedKeys, nix: detailOf<UnpackDetail>(s, 'unpack').nixPath } : { caches: ctx.caches, keys: ctx.trustedKeys },
  run: async (ctx, s) => {
    const l = ctx.layout;
    const input = { caches: ctx.caches, trustedKeys: ctx.trustedKeys };
    if (ctx.tarball) {
      const u = detailOf<UnpackDetail>(s, 'unpack');
      await applyConfigure(l, input, moved(u.nixPath, l.storeDir), u.cacertPath && moved(u.cacertPath, l.storeDir));
    } else {
      await applyConfigure(l, input);
    }
    return { summary: path.relative(l.prefix, l.confFile) };
  },
};
