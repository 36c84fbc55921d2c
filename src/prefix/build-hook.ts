// Nix's build hook: the program Nix hands each derivation to before building it, which decides whether
// a remote builder takes it. Nix 2.8 finds it at <libexec>/nix/build-remote (a symlink to nix, which
// acts on its name) and runs it before every build, builders or not: pointed at a hook that is not
// there, or at an empty `build-hook` (which it tries to execute), it builds nothing ("unexpected
// EOF" from the dead hook). Newer Nix runs `<bin>/nix __build-remote`, and no hook at all when
// `build-hook` is empty: given on the command line, that is. Nix 2.26 makes itself the hook after it
// has read nix.conf, so an empty one there is overridden (`nix config show` names the hook) and each
// build starts it, to be declined at once while no builders are set. So a prefix names its Nix's hook
// only while it has builders; without, it names none (a Nix that can skip an empty one) or a hook of
// its own that declines every build at once.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { indexOfBytes } from '../util/bytes.ts';
import { RelonixError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import type { Layout } from './layout.ts';

const SUBCOMMAND = '__build-remote';

/**
 * A Nix's hooks: `remote`, the one that hands builds to builders, or `why` it has none; and whether an
 * empty build-hook means no hook (a Nix that knows `nix __build-remote` checks; 2.8 executes the empty name).
 */
export type HookForms = { remote: string; emptyIsNone: boolean } | { remote?: undefined; why: string; emptyIsNone: false };

/**
 * Whether the file holds `needle` (the nix binary: a dozen MB), read into one buffer: a read stream's
 * fresh chunks, joined, cost more in page faults and copies than the search (12 against 5 ms).
 */
async function fileHolds(file: string, needle: Buffer): Promise<boolean> {
  const f = await fs.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafeSlow(1 << 20);
    // the end of the last read stays in front, for a needle that spans two reads
    for (let kept = 0; ; ) {
      const { bytesRead } = await f.read(buf, kept, buf.length - kept, null);
      if (bytesRead === 0) return false;
      const have = kept + bytesRead;
      if (indexOfBytes(buf.subarray(0, have), needle) !== -1) return true;
      kept = Math.min(needle.length - 1, have);
      buf.copy(buf, 0, have - kept, have);
    }
  } finally {
    await f.close();
  }
}

/**
 * The hooks of the Nix at store path `nix`: its libexec/nix/build-remote when that is there, else
 * `bin/nix __build-remote` when its nix knows that subcommand (the name is in the binary, as the
 * dispatch on it is), else none, and why.
 */
export async function hookForms(nix: string): Promise<HookForms> {
  const bin = path.join(nix, 'bin', 'nix');
  const knows = await fileHolds(bin, Buffer.from(SUBCOMMAND)).catch(() => undefined);
  const libexec = path.join(nix, 'libexec', 'nix', 'build-remote');
  // stat follows the symlink: a dangling one is no hook
  if (
    await fs.stat(libexec).then(
      (s) => s.isFile(),
      () => false,
    )
  )
    return { remote: libexec, emptyIsNone: !!knows };
  if (knows) return { remote: `${bin} ${SUBCOMMAND}`, emptyIsNone: true };
  const why = knows === undefined ? `${bin} cannot be read` : `its nix does not know ${SUBCOMMAND}`;
  return { why: `${path.basename(nix)} has no libexec/nix/build-remote, and ${why}`, emptyIsNone: false };
}

/** Where a prefix keeps the hook that declines every build, for a Nix that runs one whatever. */
export function decliningHookPath(l: Layout): string {
  return path.join(l.relonixDir, 'no-builders-hook');
}

/**
 * Pure: that hook. Nix reads its answer from the hook's stderr; `decline-permanently` makes it build
 * everything here and start no hook again in this run. It then reads what Nix still writes, until Nix
 * stops it, so no write of Nix's fails.
 */
export function decliningHook(l: Layout): string {
  return [
    '#!/bin/sh',
    `# relonix: the build hook of ${l.prefix} while it has no remote builders, for a Nix that runs`,
    '# its hook before every build (Nix 2.8): every build stays here, and Nix asks no more',
    "printf '# decline-permanently\\n' >&2",
    'exec cat >/dev/null',
    '',
  ].join('\n');
}

/**
 * What `build-hook` says for the Nix at `nix`: its own hook while the prefix has builders (when it
 * has one), else nothing for a Nix that runs no hook then, else the declining hook (written here).
 */
export async function hookSetting(l: Layout, nix: string, builders: boolean): Promise<string> {
  const forms = await hookForms(nix);
  if (builders && forms.remote) return forms.remote;
  if (forms.emptyIsNone) return '';
  const hook = decliningHookPath(l);
  const text = decliningHook(l);
  if ((await fs.readFile(hook, 'utf8').catch(() => '')) !== text) await writeFileAtomic(hook, text, 0o755);
  return hook;
}

/** Pure: whether nix.conf lines set builders (an empty `builders =` sets none). */
export function setsBuilders(confLines: string): boolean {
  return /^[ \t]*(?:extra-)?builders[ \t]*=[ \t]*\S/m.test(confLines);
}

/** Whether the prefix builds remotely: relonix builder add recorded builders, or the user's own nix.conf lines name some. */
export async function hasBuilders(l: Layout, userConfLines: string): Promise<boolean> {
  return (
    setsBuilders(userConfLines) ||
    (await fs.stat(l.buildersFile).then(
      () => true,
      () => false,
    ))
  );
}

/** Remote builds asked of a Nix that has no build hook: at builder add, or when a prefix with builders gets such a Nix. */
export function noBuildHook(l: Layout, why: string): RelonixError {
  return new RelonixError(`the Nix in ${l.prefix} has no build hook, which remote builds need: ${why}`, {
    kind: 'preflight',
    hint:
      "bootstrap the prefix from a Nix that has one (Nix 2.8's libexec/nix/build-remote, or a nix that runs `nix __build-remote`), " +
      'or build here only: relonix builder list, then relonix builder remove URL (and drop builders from your own nix.conf lines)',
  });
}
