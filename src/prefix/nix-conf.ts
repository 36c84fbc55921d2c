// The prefix's nix.conf: the block relonix owns and rewrites whole (its settings, the build hook),
// merged into the user's file and dropped from it, and the user's own lines outside it. The
// bootstrap's configure stage writes it; relonix build and relonix builder rewrite parts of it.

import type { Parallelism } from '../host/parallelism.ts';
import { hasBuilders, hookSetting } from './build-hook.ts';
import type { Layout } from './layout.ts';
import type { Journal } from './sqlite-journal.ts';

export const BEGIN = '# BEGIN relonix managed block: relonix rewrites the lines up to END; add your own settings outside it';
export const END = '# END relonix managed block';

export interface NixConfSettings {
  caches: string[];
  trustedKeys: string[];
  /** cores and max-jobs for this host (host/parallelism.ts); none: Nix's defaults */
  parallelism?: Pick<Parallelism, 'cores' | 'maxJobs'>;
  /** the prefix's translator of upstream's binaries (src/translator/), when it has one */
  translator?: { substituter: string; publicKey: string };
  /** the build hook (prefix/build-hook.ts): the active Nix's while the prefix has builders, else none or one that declines */
  buildHook?: string;
  /** the journal of the prefix's database (prefix/sqlite-journal.ts): chosen once, before Nix makes it */
  journal: Journal;
}

const HOOK_COMMENT = "# the build hook hands builds to remote builders: the Nix's own while there are builders; else none, or one that declines";

/**
 * The settings a Nix needs on a host without root or namespaces. use-sqlite-wal follows the
 * database's journal: WAL where the filesystem gives the shared memory and locks it needs, the
 * rollback journal elsewhere, and always what the database on disk was made with: a database made
 * in WAL mode cannot be opened with WAL off, and a Nix with WAL on turns a rollback one into WAL.
 */
export function nixConfBlock(input: NixConfSettings): string {
  const lines = [
    BEGIN,
    '# no user namespaces or chroot on such hosts',
    'sandbox = false',
    '# no root, so no build users',
    'build-users-group =',
    "# the database's journal, chosen once for its filesystem and kept with it (relonix status says which and why)",
    `use-sqlite-wal = ${input.journal === 'wal'}`,
    '# caches are filled by other builders while we run: never remember a miss',
    'narinfo-cache-negative-ttl = 0',
    // nothing on cache.nixos.org is built for this store dir: the given caches, and the translator
    // that rewrites upstream's binaries for it, started by the bin/ wrappers (its narinfos are
    // signed with the prefix's own key)
    `substituters = ${[...input.caches, ...(input.translator ? [input.translator.substituter] : [])].join(' ')}`.trimEnd(),
    `trusted-public-keys = ${[...input.trustedKeys, ...(input.translator ? [input.translator.publicKey] : [])].join(' ')}`.trimEnd(),
    'require-sigs = true',
    HOOK_COMMENT,
    hookLine(input.buildHook ?? ''),
    ...(input.parallelism
      ? [
          "# from this host's cgroup limits and CPU affinity when this was written; relonix build reads them afresh",
          `cores = ${input.parallelism.cores}`,
          `max-jobs = ${input.parallelism.maxJobs}`,
        ]
      : []),
    END,
  ];
  return `${lines.join('\n')}\n`;
}

const hookLine = (hook: string) => `build-hook = ${hook}`.trimEnd();

/**
 * Pure: a nix.conf whose managed block sets `build-hook` to `hook`, everything else as it was; one
 * without a managed block (a prefix not bootstrapped yet) is left alone: the bootstrap writes it.
 */
export function withBuildHook(existing: string, hook: string): string {
  const start = existing.indexOf(BEGIN);
  const endAt = existing.indexOf(END);
  if (start === -1 || endAt < start) return existing;
  const block = existing.slice(start, endAt);
  const next = /^build-hook =.*$/m.test(block)
    ? block.replace(/^build-hook =.*$/m, hookLine(hook))
    : // a block an older relonix wrote: the line goes last
      `${block}${HOOK_COMMENT}\n${hookLine(hook)}\n`;
  return existing.slice(0, start) + next + existing.slice(endAt);
}

/** What `build-hook` is for the Nix at `nix` (prefix/build-hook.ts), with the builders `conf` and the builders file give the prefix. */
export async function buildHookSetting(l: Layout, nix: string | undefined, conf: string): Promise<string> {
  // no Nix yet (a restore from caches configures first): the restore configures again with its Nix
  return nix ? hookSetting(l, nix, await hasBuilders(l, userConfLines(conf))) : '';
}

/** Pure: the user's own lines of a nix.conf, everything outside the managed block. */
export function userConfLines(existing: string): string {
  const start = existing.indexOf(BEGIN);
  const endAt = existing.indexOf(END);
  return start !== -1 && endAt > start ? existing.slice(0, start) + existing.slice(endAt + END.length) : existing;
}

/** The lines that open and close a block of nix.conf that relonix owns and rewrites whole. */
export interface BlockMarks {
  begin: string;
  end: string;
}

const MANAGED: BlockMarks = { begin: BEGIN, end: END };

/** Where the block `marks` delimit starts and ends (its closing newline included), if there is one. */
function blockRange(existing: string, marks: BlockMarks): [number, number] | undefined {
  const start = existing.indexOf(marks.begin);
  const endAt = existing.indexOf(marks.end);
  if (start === -1 || endAt < start) return undefined;
  const after = endAt + marks.end.length;
  return [start, existing[after] === '\n' ? after + 1 : after];
}

/** Pure: replaces a managed block in an existing nix.conf (or prepends it), keeping everything else. */
export function mergeNixConf(existing: string | undefined, block: string, marks: BlockMarks = MANAGED): string {
  if (!existing) return block;
  const r = blockRange(existing, marks);
  if (r) return existing.slice(0, r[0]) + block + existing.slice(r[1]);
  // the block goes first so that the user's own lines, read later, win
  return block + (existing.startsWith('\n') ? '' : '\n') + existing;
}

/** Pure: a nix.conf without the block `marks` delimit, and without the blank line a prepended one got. */
export function dropNixConfBlock(existing: string, marks: BlockMarks): string {
  const r = blockRange(existing, marks);
  if (!r) return existing;
  const after = r[0] === 0 && existing[r[1]] === '\n' ? r[1] + 1 : r[1];
  return existing.slice(0, r[0]) + existing.slice(after);
}
