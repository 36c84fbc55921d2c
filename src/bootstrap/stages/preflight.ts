import { promises as fs } from 'node:fs';
import { type DirFacts, probeDir, spaceFacts } from '../../host/filesystem.ts';
import { request } from '../../net/http.ts';
import { isLocalSource, localSource } from '../../net/local.ts';
import { prefixRefused } from '../../prefix/guard.ts';
import type { Layout } from '../../prefix/layout.ts';
import { mib } from '../../util/format.ts';
import { isTempName, listDir } from '../../util/fs.ts';
import { PREFIX, type Problem, STORE_DIR, symlinked, tooFewInodes, tooLittleSpace, unrunnable, unwritable } from '../place-problems.ts';
import { type Stage, tarballKey } from '../stage.ts';

/** Unpacked closure size per byte of xz tarball; official Nix tarballs unpack to about 5-6x. */
export const UNPACK_FACTOR = 6;
/** Headroom for the database, logs, temp copies during relocation and the check build. */
export const MARGIN = 64 * 1024 * 1024;
/**
 * Inodes a bootstrap takes: a file or directory each in the unpacked closure (189 in the fixture
 * made from Debian's nix-bin; an official tarball carries manuals and more libraries), the same
 * again while relocation writes its copies, and the database, logs and check build. Generous,
 * since running out midway fails with ENOSPC while bytes are still free.
 */
export const INODES_NEEDED = 10_000;
/** Used when the tarball's size cannot be learned before downloading (official ones are ~20-30 MiB). */
export const DEFAULT_TARBALL_SIZE = 32 * 1024 * 1024;

export interface PreflightFacts {
  prefix: string;
  realPrefix: string;
  writable: boolean;
  writeError?: string;
  executable: boolean;
  execError?: string;
  freeBytes: number;
  /** undefined where the filesystem does not count inodes */
  freeInodes?: number;
  fsType: string;
  hostSystem: string;
  /** the system named by the tarball's file name, when it follows nix-<ver>-<system>.tar.xz */
  tarballSystem?: string;
  /** bytes of the tarball, when known (local file, Content-Length, or already downloaded) */
  tarballBytes?: number;
  /** a store dir outside the prefix (bootstrap --store-dir), checked like the prefix */
  store?: StoreDirFacts;
  /** what the store dir holds that this prefix did not put there (another prefix's store) */
  foreignStore?: { dir: string; names: string[] };
}

export interface StoreDirFacts extends DirFacts {
  dir: string;
  /** relocation and restore rename whole trees into the store, which only works within one filesystem */
  sameFilesystem: boolean;
}

export interface PreflightPlan {
  ok: boolean;
  needBytes: number;
  problems: Problem[];
}

/**
 * The one reckoning of the space a tarball bootstrap needs: the download (unless it is already
 * there: unpack asks again once it is), the unpacked tree, and a margin.
 */
export function estimateNeed(tarballBytes: number | undefined, downloaded = false): number {
  const t = tarballBytes ?? DEFAULT_TARBALL_SIZE;
  return (downloaded ? 0 : t) + t * UNPACK_FACTOR + MARGIN;
}

/** System named in an official tarball name: nix-2.8.0-x86_64-linux.tar.xz → x86_64-linux. */
export function systemFromUrl(url: string): string | undefined {
  const base = url.split(/[?#]/)[0]!.split('/').pop() ?? '';
  const m = /^nix-[^-]+(?:-[^-]+)*?-([a-z0-9_]+-(?:linux|darwin))\.tar\.(?:xz|zst|gz|bz2)$/.exec(base);
  return m?.[1];
}

/** Pure: the facts → what is wrong and how to fix it. */
export function planPreflight(f: PreflightFacts): PreflightPlan {
  const problems: PreflightPlan['problems'] = [];
  const needBytes = estimateNeed(f.tarballBytes);
  if (f.realPrefix !== f.prefix) problems.push(symlinked(PREFIX, f.prefix, f.realPrefix));
  if (!f.writable) problems.push(unwritable(PREFIX, f.prefix, f.writeError ?? 'permission denied'));
  else if (!f.executable) problems.push(unrunnable(PREFIX, f.prefix, f.execError ?? 'noexec mount?'));
  if (f.writable && f.freeBytes < needBytes) problems.push(tooLittleSpace(f.prefix, f.fsType, f.freeBytes, needBytes));
  if (f.writable && f.freeInodes !== undefined && f.freeInodes < INODES_NEEDED) problems.push(tooFewInodes(f.prefix, f.fsType, f.freeInodes, INODES_NEEDED));
  if (f.store) problems.push(...storeDirProblems(f.store, f.prefix));
  if (f.foreignStore?.names.length) problems.push(foreignStoreProblem(f.foreignStore.dir, f.foreignStore.names));
  if (f.tarballSystem && f.tarballSystem !== f.hostSystem) {
    problems.push({
      message: `the tarball is built for ${f.tarballSystem} but this machine is ${f.hostSystem}`,
      hint: `use the ${f.hostSystem} tarball (nix-<version>-${f.hostSystem}.tar.xz)`,
    });
  }
  return { ok: problems.length === 0, needBytes, problems };
}

function storeDirProblems(s: StoreDirFacts, prefix: string): Problem[] {
  if (s.real !== s.dir) return [symlinked(STORE_DIR, s.dir, s.real)];
  if (!s.writable) return [unwritable(STORE_DIR, s.dir, s.writeError ?? 'permission denied')];
  if (!s.executable) return [unrunnable(STORE_DIR, s.dir, s.execError ?? 'noexec mount?')];
  if (!s.sameFilesystem) {
    return [
      {
        message: `the store dir ${s.dir} is on another filesystem than the prefix ${prefix}`,
        hint: 'put the prefix and the store dir on one filesystem, e.g. --prefix /tmp/nix --store-dir /tmp/store',
      },
    ];
  }
  return [];
}

/**
 * A store dir is one prefix's: Nix's garbage collector deletes whatever its database does not
 * register, so a second prefix there would delete the first one's paths, and it theirs.
 */
function foreignStoreProblem(dir: string, names: string[]): Problem {
  const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? `, … (${names.length} in all)` : '');
  return {
    message: `the store dir ${dir} already holds what this prefix's database does not register (${shown}): it is another prefix's store, or what one left`,
    hint: 'give this prefix a store dir of its own that is empty or new (--store-dir DIR); remove an old one with relonix uninstall --prefix <its prefix>',
  };
}

/** Bytes of the tarball without downloading it: a local file's size or the server's Content-Length. */
export async function probeTarballSize(url: string): Promise<number | undefined> {
  try {
    if (url.startsWith('file://') || url.startsWith('/')) {
      const p = url.startsWith('file://') ? new URL(url).pathname : url;
      return (await fs.stat(p)).size;
    }
    if (!/^https?:\/\//.test(url)) return undefined;
    const r = await request(url, { method: 'HEAD', idleMs: 5000 });
    r.drop();
    const len = Number(r.headers['content-length']);
    return r.status >= 200 && r.status < 300 && Number.isFinite(len) && len > 0 ? len : undefined;
  } catch {
    return undefined; // the fetch stage reports network trouble properly
  }
}

/**
 * What the store dir holds that this prefix did not put there: everything, unless the prefix took
 * the store dir when it was empty (`owned`). Relonix's own temporaries are left out.
 */
async function foreignStore(dir: string, owned: boolean): Promise<PreflightFacts['foreignStore']> {
  if (owned) return undefined;
  const names = (await listDir(dir)).filter((n) => !isTempName(n)).sort();
  return names.length ? { dir, names } : undefined;
}

/** Gathers the facts, writing nothing bigger than a two-line probe script (removed again). */
export async function gatherFacts(l: Layout, hostSystem: string, url: string, tarballBytes?: number, storeOwned = false): Promise<PreflightFacts> {
  const facts: PreflightFacts = {
    prefix: l.prefix,
    realPrefix: l.prefix,
    writable: true,
    executable: true,
    freeBytes: 0,
    fsType: 'unknown',
    hostSystem,
    tarballSystem: systemFromUrl(url),
    tarballBytes,
  };
  const p = await probeDir(l.prefix, l.relonixDir);
  Object.assign(facts, { realPrefix: p.real, writable: p.writable, writeError: p.writeError, executable: p.executable, execError: p.execError });
  if (!p.writable) return facts;
  const space = await spaceFacts(l.prefix);
  Object.assign(facts, space);
  if (!l.storeDir.startsWith(`${l.prefix}/`)) {
    const s = await probeDir(l.storeDir, l.storeDir);
    const dev = async (d: string) => (await fs.stat(d)).dev;
    const sameFilesystem = s.writable && (await dev(l.storeDir)) === (await dev(l.prefix));
    facts.store = { dir: l.storeDir, ...s, sameFilesystem };
  }
  facts.foreignStore = await foreignStore(l.storeDir, storeOwned);
  return facts;
}

/** A cache-only restore has no tarball to size: what a Nix closure restored from a cache needs. */
const RESTORE_BYTES = 16 * 1024 * 1024;

export const preflightStage: Stage<'preflight'> = {
  name: 'preflight',
  title: 'Check the prefix and the machine',
  inputs: (ctx) => (ctx.tarball ? { prefix: ctx.layout.prefix, source: tarballKey(ctx.tarball) } : { prefix: ctx.layout.prefix }),
  run: async (ctx, s, progress) => {
    let sizing: Promise<number | undefined> = Promise.resolve(RESTORE_BYTES);
    if (ctx.tarball) {
      // a local tarball that is missing, or no file at all (a directory, /dev/zero): said now
      if (isLocalSource(ctx.tarball.url)) await localSource(ctx.tarball.url);
      progress('probing the tarball size');
      // asked of the server while the prefix is probed: a round trip, over a real network
      sizing = probeTarballSize(ctx.tarball.url);
    }
    const facts = await gatherFacts(ctx.layout, ctx.host, ctx.tarball?.url ?? '', undefined, s.storeOwned || !!s.nix).finally(() => sizing);
    facts.tarballBytes = await sizing;
    const plan = planPreflight(facts);
    if (!plan.ok) throw prefixRefused(plan.problems);
    return {
      patch: { storeOwned: true },
      detail: ctx.tarball ? { freeBytes: facts.freeBytes, needBytes: plan.needBytes, fsType: facts.fsType } : undefined,
      summary: `${mib(facts.freeBytes)} free on ${facts.fsType}, ${ctx.host}`,
    };
  },
};
