import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { clearTemps, exists, listDir, readJson, removeTree, replaceAtomic, writeFileAtomic } from '../util/fs.ts';
import { pool } from '../util/pool.ts';
import { notStorable } from './errors.ts';
import { compareNames } from './nar/framing.ts';
import { NarHasher } from './nar/write.ts';
import { type ElfRelocator, planFile, rewriteLinkTarget } from './relocate-text.ts';

export type { ElfRelocator } from './relocate-text.ts';

export interface RelocateCounts {
  files: number;
  elfPatched: number;
  symlinks: number;
  textFiles: number;
  textRefs: number;
  /** files of binary data (ELF files included) whose references were rewritten in place: store dirs of one length */
  binaryFiles: number;
  unrewritable: number;
}

export interface UnrewritableHit {
  /** the file as it is named in the destination store */
  file: string;
  offset: number;
  string: string;
}

/** What relocating one store path did; kept as a marker so a resumed run knows the path is done. */
export interface PathResult {
  basename: string;
  /** true when any byte, mode or link target changed (or may have: an interrupted earlier pass) */
  changed: boolean;
  counts: RelocateCounts;
  hits: UnrewritableHit[];
  /** NAR hash (hex sha256) and size of the relocated path, computed from the bytes as written */
  narHash?: string;
  narSize?: number;
}

export interface RelocateOptions {
  /** the directory holding `<hash>-<name>` entries to relocate (e.g. the unpacked tarball's store/) */
  sourceDir: string;
  /** the store dir the paths were built for, e.g. /nix/store */
  from: string;
  /** the destination store dir, e.g. /tmp/nix/store */
  to: string;
  /** where per-path markers and temporary files live (same filesystem as sourceDir and to) */
  workDir: string;
  relocateElf: ElfRelocator;
  /** called after each store path */
  onPath?: (r: PathResult, done: number, total: number) => void;
  /** store paths relocated at once (default 4) */
  concurrency?: number;
  /** paths already relocated where they lie (while they were unpacked): only their move is left */
  known?: ReadonlyMap<string, PathResult>;
}

export function emptyCounts(): RelocateCounts {
  return { files: 0, elfPatched: 0, symlinks: 0, textFiles: 0, textRefs: 0, binaryFiles: 0, unrewritable: 0 };
}

function addCounts(a: RelocateCounts, b: RelocateCounts): void {
  // (markers written before a count existed lack it)
  for (const k of Object.keys(a) as (keyof RelocateCounts)[]) a[k] += b[k] ?? 0;
}

/**
 * Relocates every store path in sourceDir and moves it into `to`. Per path: an `.started` marker,
 * the rewrite (each file through a temp file + rename, so a kill never leaves half a file), a
 * `.json` result marker, then one rename into the store. A re-run skips finished paths, and the
 * rewrite rules are idempotent, so a path interrupted half-way is simply relocated again.
 */
export async function relocateTree(opts: RelocateOptions): Promise<{ paths: PathResult[]; counts: RelocateCounts }> {
  const markers = path.join(opts.workDir, 'paths');
  const tmpDir = path.join(opts.workDir, 'tmp');
  await fs.mkdir(markers, { recursive: true });
  await clearTemps(markers);
  await removeTree(tmpDir); // temp files of a killed run
  await fs.mkdir(tmpDir, { recursive: true });
  await fs.mkdir(opts.to, { recursive: true });

  const pending = new Set((await exists(opts.sourceDir)) ? await fs.readdir(opts.sourceDir) : []);
  const done = (await fs.readdir(markers)).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
  const names = [...new Set([...pending, ...done, ...(opts.known?.keys() ?? [])])].sort();
  const results = new Map<string, PathResult>();
  let i = 0;
  // a few paths at once: one path's file I/O overlaps another's hashing and ELF editing
  await pool(names, opts.concurrency ?? 4, async (basename: string): Promise<void> => {
    const src = path.join(opts.sourceDir, basename);
    const dest = path.join(opts.to, basename);
    const srcThere = pending.has(basename);
    const result = (await readJson<PathResult>(path.join(markers, `${basename}.json`))) ?? (await resultOf(basename, srcThere, opts, markers, tmpDir));
    if (!result) return;
    if (srcThere) {
      if (await exists(dest)) await removeTree(src);
      else await moveDir(src, dest);
    }
    results.set(basename, result);
    opts.onPath?.(result, ++i, names.length);
  });
  const ordered = names.map((n) => results.get(n)).filter((r): r is PathResult => r !== undefined);
  const counts = emptyCounts();
  for (const r of ordered) addCounts(counts, r.counts);
  return { paths: ordered, counts };
}

/**
 * What relocating a path without a marker gives: nothing when it is neither here nor relocated
 * before; the store's copy when the store has it already; the result of a relocation done while it
 * was unpacked; else a relocation now. Each but the relocation-while-unpacked leaves a marker.
 */
async function resultOf(basename: string, srcThere: boolean, opts: RelocateOptions, markers: string, tmpDir: string): Promise<PathResult | undefined> {
  const dest = path.join(opts.to, basename);
  const known = opts.known?.get(basename);
  // moved into the store by an earlier run that was killed before it finished
  if (!srcThere) return known && (await exists(dest)) ? known : undefined;
  let result: PathResult;
  if (await exists(dest)) {
    // already in the store (an earlier bootstrap, or a restore): the store copy wins
    result = { basename, changed: true, counts: emptyCounts(), hits: [] };
  } else if (known) {
    return known;
  } else {
    const started = path.join(markers, `${basename}.started`);
    const interrupted = await exists(started);
    await fs.writeFile(started, '');
    result = await relocatePath(path.join(opts.sourceDir, basename), basename, opts, tmpDir);
    if (interrupted) result.changed = true; // an earlier pass may have changed files already
  }
  await writeFileAtomic(path.join(markers, `${basename}.json`), JSON.stringify(result));
  await fs.rm(path.join(markers, `${basename}.started`), { force: true });
  return result;
}

/** Rename a (read-only) directory into another parent: Linux wants it writable to update `..`. */
async function moveDir(src: string, dest: string): Promise<void> {
  const st = await fs.lstat(src);
  if (st.isDirectory()) {
    await fs.chmod(src, 0o755);
    await fs.rename(src, dest);
    await fs.chmod(dest, 0o555);
  } else {
    await fs.rename(src, dest);
  }
}

interface Entry {
  abs: string;
  rel: string;
}

/** What relocating one path's files shares: the path's result and NAR hash, and its hard links. */
interface Walk {
  opts: RelocateOptions;
  result: PathResult;
  destRoot: string;
  /** inode → the first name written for it, so further hard links to it are re-linked to the new file */
  written: Map<string, string>;
  nar: NarHasher;
  replace: (target: string, make: (tmp: string) => Promise<void>) => Promise<void>;
}

/** One regular file: rewritten through a temporary when its plan changes it, else given the store mode. */
async function rewriteRegular(w: Walk, e: Entry, st: Stats): Promise<void> {
  w.result.counts.files++;
  const ino = `${st.dev}:${st.ino}`;
  // (once the first name is replaced, the old inode has one link fewer: look it up regardless)
  {
    const first = w.written.get(ino);
    if (first !== undefined) {
      // the first name got new content through a new inode; keep this name linked to it
      if (first !== '') await w.replace(e.abs, (tmp) => fs.link(first, tmp));
      w.nar.regular(await fs.readFile(e.abs), (st.mode & 0o111) !== 0);
      return;
    }
  }
  const buf = await fs.readFile(e.abs);
  const plan = planFile(buf, w.opts.from, w.opts.to, w.opts.relocateElf, e.abs);
  if (plan.kind === 'text' && plan.rewritten > 0) {
    w.result.counts.textFiles++;
    w.result.counts.textRefs += plan.rewritten;
  } else if (plan.rewritten > 0) w.result.counts.binaryFiles++;
  if (plan.elfPatched) w.result.counts.elfPatched++;
  for (const h of plan.unrewritable) {
    w.result.hits.push({ file: path.join(w.destRoot, e.rel), offset: h.offset, string: h.string });
    w.result.counts.unrewritable++;
  }
  const mode = st.mode & 0o111 ? 0o555 : 0o444;
  w.nar.regular(plan.content ?? buf, mode === 0o555);
  if (plan.content) {
    const content = plan.content;
    await w.replace(e.abs, async (tmp) => {
      await fs.writeFile(tmp, content, { mode: 0o600 });
      await fs.chmod(tmp, mode);
    });
    w.result.changed = true;
    if (st.nlink > 1) w.written.set(ino, e.abs);
  } else {
    // the canonical store modes; only the executable bit is part of the NAR
    if ((st.mode & 0o777) !== mode) await fs.chmod(e.abs, mode);
    if (st.nlink > 1) w.written.set(ino, ''); // unchanged inode: other names already see it
  }
}

async function relocatePath(root: string, basename: string, opts: RelocateOptions, tmpDir: string): Promise<PathResult> {
  const result: PathResult = { basename, changed: false, counts: emptyCounts(), hits: [] };
  const destRoot = path.join(opts.to, basename);
  const written = new Map<string, string>();
  const dirs: string[] = [];
  const nar = new NarHasher();
  // made in the work dir, which a re-run clears: the tree itself never holds a temporary
  const replace = (target: string, make: (tmp: string) => Promise<void>) => replaceAtomic(target, make, { storeContent: true, tempDir: tmpDir });
  const walk: Walk = { opts, result, destRoot, written, nar, replace };

  const visit = async (e: Entry): Promise<void> => {
    const st = await fs.lstat(e.abs);
    nar.open();
    try {
      await visitNode(e, st);
    } finally {
      nar.close();
    }
  };

  const visitNode = async (e: Entry, st: Stats): Promise<void> => {
    if (st.isSymbolicLink()) {
      const target = await fs.readlink(e.abs);
      const next = rewriteLinkTarget(target, opts.from, opts.to);
      nar.symlink(next ?? target);
      if (next !== null) {
        await ensureWritableParent(e.abs, dirs);
        await replace(e.abs, (tmp) => fs.symlink(next, tmp));
        result.counts.symlinks++;
        result.changed = true;
      }
      return;
    }
    if (st.isDirectory()) {
      dirs.push(e.abs);
      if ((st.mode & 0o200) === 0) await fs.chmod(e.abs, (st.mode & 0o7777) | 0o200);
      nar.directory();
      for (const name of (await fs.readdir(e.abs)).sort(compareNames)) {
        nar.entry(name);
        await visit({ abs: path.join(e.abs, name), rel: path.join(e.rel, name) });
        nar.close();
      }
      return;
    }
    if (!st.isFile()) throw notStorable(e.abs);
    await rewriteRegular(walk, e, st);
  };

  await visit({ abs: root, rel: '' });
  // read-only again, deepest first (a parent must stay writable while its children change)
  for (const d of dirs.reverse()) await fs.chmod(d, 0o555);
  result.narHash = nar.h.digest('hex');
  result.narSize = nar.size;
  return result;
}

async function ensureWritableParent(p: string, dirs: string[]): Promise<void> {
  const parent = path.dirname(p);
  if (!dirs.includes(parent)) return;
  const st = await fs.stat(parent);
  if ((st.mode & 0o200) === 0) await fs.chmod(parent, (st.mode & 0o7777) | 0o200);
}

export interface RelocationReport {
  from: string;
  to: string;
  counts: RelocateCounts;
  hits: UnrewritableHit[];
}

/** The report `relonix status` summarises: counts, and every reference left in binary data. */
export async function writeReport(file: string, report: RelocationReport): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(report, null, 1)}\n`);
}

export async function readReport(file: string): Promise<RelocationReport | undefined> {
  return readJson<RelocationReport>(file);
}

/** In the work dir: the results of a relocation done while the paths were unpacked. */
const UNPACKED = 'unpacked.json';

export interface UnpackedRelocation {
  results: PathResult[];
  /** paths left for relocation from disk, as if a relocation of them had been interrupted */
  abandoned: string[];
}

/** Records what relocating while unpacking did, so the relocate stage only moves those paths. */
export async function writeUnpackedRelocation(workDir: string, r: UnpackedRelocation): Promise<void> {
  const markers = path.join(workDir, 'paths');
  await fs.mkdir(markers, { recursive: true });
  // an interrupted relocation is redone whole and its path's NAR hash taken again
  for (const b of r.abandoned) await fs.writeFile(path.join(markers, `${b}.started`), '');
  await writeFileAtomic(path.join(workDir, UNPACKED), JSON.stringify(r));
}

export async function readUnpackedRelocation(workDir: string): Promise<UnpackedRelocation | undefined> {
  return readJson<UnpackedRelocation>(path.join(workDir, UNPACKED));
}

/** Every path relocated so far, by basename: each path's marker, else the relocation while unpacking. */
export async function relocationResults(workDir: string): Promise<Map<string, PathResult>> {
  const out = new Map<string, PathResult>();
  for (const r of (await readUnpackedRelocation(workDir).catch(() => undefined))?.results ?? []) out.set(r.basename, r);
  const dir = path.join(workDir, 'paths');
  for (const n of await listDir(dir)) {
    if (!n.endsWith('.json')) continue;
    try {
      const r = JSON.parse(await fs.readFile(path.join(dir, n), 'utf8')) as PathResult;
      out.set(r.basename, r);
    } catch {
      // unreadable marker: that path's hash is taken again
      out.delete(n.slice(0, -5));
    }
  }
  return out;
}
