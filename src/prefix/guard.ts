// What a bootstrap checks before it writes anything under a prefix: a path the relocated Nix can
// live at, a directory it can create, and one that is empty or already relonix's, with the store
// dir it was bootstrapped with.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, errnoWords, isNoSpace, noSpace, RelonixError } from '../util/errors.ts';
import { freeSpace, makeDirs } from '../util/fs.ts';
import { shQuote } from '../util/shell.ts';
import type { Layout } from './layout.ts';
import { type BootstrapState, readState } from './state.ts';

/**
 * SQLite opens no path longer than 512 bytes, and Nix's database has a journal at
 * <prefix>/var/nix/db/db.sqlite-journal: a longer prefix bootstraps up to the register stage and
 * fails there with "cannot open SQLite database".
 */
export const MAX_PREFIX_BYTES = 512 - '/var/nix/db/db.sqlite-journal'.length;
/** The longest name one directory entry may have (NAME_MAX on Linux filesystems). */
const MAX_NAME_BYTES = 255;

/**
 * Characters that break a relocated Nix late (checked with Nix 2.8): whitespace and `"` (the
 * profile's derivation), `\` (store paths), `:` (it splits RUNPATH and PATH), `;` (it splits the
 * builders setting, whose default names <prefix>/etc/nix/machines: no build runs), and control
 * characters, which would also end a comment line in a generated script.
 */
const UNUSABLE: [RegExp, string][] = [
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  [/[\x00-\x1f\x7f]/, 'a control character'],
  [/\s/, 'whitespace'],
  [/"/, 'a double quote'],
  [/\\/, 'a backslash'],
  [/:/, 'a colon'],
  [/;/, 'a semicolon'],
];

/** What is wrong with a place or a path, and the fix (bootstrap's preflight and doctor word theirs so too). */
export interface Problem {
  message: string;
  hint: string;
}

/** Pure: why Nix cannot live at this prefix (or store dir) path, if it cannot. */
export function pathProblems(what: 'prefix' | 'store dir', p: string, maxBytes = Infinity): Problem[] {
  const flag = what === 'prefix' ? '--prefix' : '--store-dir';
  const shown = JSON.stringify(p);
  const out: Problem[] = [];
  for (const [re, name] of UNUSABLE) {
    const m = re.exec(p);
    if (!m) continue;
    out.push({
      message: `the ${what} ${shown} has ${name} (${JSON.stringify(m[0])}) in it, which Nix cannot have in its store paths`,
      hint: `choose a ${what} without whitespace, " \\ : ; or control characters, e.g. ${flag} ${what === 'prefix' ? '$HOME/nix' : '/tmp/store'}`,
    });
    break;
  }
  const bytes = Buffer.byteLength(p);
  if (bytes > maxBytes) {
    out.push({
      message: `the ${what} ${shown} is ${bytes} bytes long; Nix's database takes a ${what} of at most ${maxBytes}`,
      hint: `choose a shorter ${what} (${flag} DIR)`,
    });
  }
  const long = p.split('/').find((part) => Buffer.byteLength(part) > MAX_NAME_BYTES);
  if (long !== undefined) {
    out.push({
      message: `the ${what} ${shown} has a name of ${Buffer.byteLength(long)} bytes in it; filesystems take at most ${MAX_NAME_BYTES}`,
      hint: `choose a ${what} with shorter names (${flag} DIR)`,
    });
  }
  return out;
}

/** The one refusal of a prefix: every problem found, each with its fix. */
export function prefixRefused(problems: Problem[]): RelonixError {
  return new RelonixError(problems.map((p) => p.message).join('; '), { kind: 'preflight', hint: [...new Set(problems.map((p) => p.hint))].join('; ') });
}

/** Refuses a prefix or store dir path that Nix cannot use, before anything is written there. */
export function checkPrefixPaths(l: Layout): void {
  // a store dir under the prefix has every problem the prefix has: said once
  const inside = l.storeDir.startsWith(`${l.prefix}/`);
  const problems = [...pathProblems('prefix', l.prefix, MAX_PREFIX_BYTES), ...(inside ? [] : pathProblems('store dir', l.storeDir))];
  if (problems.length) throw prefixRefused(problems);
}

/** Creates the prefix directory, or says in words why it cannot be (never a bare errno). */
async function createPrefix(l: Layout): Promise<void> {
  try {
    await makeDirs(l.prefix);
  } catch (e) {
    throw await cannotCreate(l.prefix, e);
  }
}

/** Why a directory could not be made (or written in), as a preflight refusal with the fix. */
async function cannotCreate(dir: string, e: unknown, what = 'the prefix'): Promise<RelonixError> {
  const at = (e as NodeJS.ErrnoException).path ?? dir;
  const parent = path.dirname(at);
  const code = errnoCode(e);
  if (isNoSpace(e)) return noSpace(parent, await freeSpace(parent).catch(() => 0), undefined, e);
  const why: Record<string, string> = {
    ENOTDIR: `${at} is a file, not a directory`,
    EACCES: `this user may not create ${at} (no write permission in ${parent})`,
    EPERM: `this user may not create ${at} (no write permission in ${parent})`,
    EROFS: `${parent} is on a read-only filesystem`,
    ENOENT: `${parent} takes no new directories (a filesystem such as /proc or /sys)`,
    ENAMETOOLONG: `${at} is longer than the filesystem takes`,
  };
  return cannotCreateDir(what, dir, why[code ?? ''] ?? errnoWords(e), e);
}

/** The system will not create the prefix (or its store dir): a file on the way, read-only, no permission. */
export function cannotCreateDir(what: string, dir: string, why: string, cause?: unknown): RelonixError {
  return new RelonixError(`cannot create ${what} ${dir}: ${why}`, {
    kind: 'preflight',
    hint: `choose a directory you can create, on a writable filesystem, e.g. --prefix "$HOME/nix" or --prefix "/tmp/$(id -u)-nix"`,
    cause,
  });
}

/** Whether relonix made this directory a prefix: it has relonix's own directory in it. */
export async function isPrefix(prefix: string): Promise<boolean> {
  try {
    return (await fs.lstat(path.join(prefix, 'var', 'relonix'))).isDirectory();
  } catch {
    return false;
  }
}

/** Names a mount point holds before anything is put on it. */
const EMPTY_FS = new Set(['lost+found']);

/** What is in the way of a bootstrap: the entries of a directory that is not a relonix prefix. */
async function inTheWay(prefix: string): Promise<string[]> {
  const names = (await fs.readdir(prefix)).filter((n) => !EMPTY_FS.has(n));
  if (names.length === 0 || (await isPrefix(prefix))) return [];
  return names.sort();
}

/** A directory that is neither empty nor a relonix prefix: the entries in the way are named. */
export function prefixNotEmpty(prefix: string, names: string[]): RelonixError {
  // a name is printed as it is only when it is plain text: never raw control characters on a terminal
  const plain = (n: string) => (/^[\x20-\x7e]+$/.test(n) ? n : JSON.stringify(n));
  const shown = names.slice(0, 10).map(plain).join(', ') + (names.length > 10 ? `, … (${names.length} in all)` : '');
  return new RelonixError(`${prefix} is not empty and not a relonix prefix: ${shown} would be in the way`, {
    kind: 'preflight',
    hint: 'bootstrap into a new or empty directory (--prefix DIR); relonix does not write among files that are not its own',
  });
}

/** A prefix's recorded store dir is its own: another one needs another prefix. */
export function storeDirChanged(l: Layout, recorded: string): RelonixError {
  return new RelonixError(`${l.prefix} was bootstrapped with the store dir ${recorded}, not ${l.storeDir}; a prefix keeps its store dir`, {
    kind: 'usage',
    hint: `bootstrap a new prefix for ${l.storeDir} (--prefix DIR), or remove this one first: relonix uninstall --prefix ${shQuote(l.prefix)}`,
  });
}

/** relonix demo --prefix of a prefix some other bootstrap made. */
export function notTheDemos(l: Layout): RelonixError {
  return new RelonixError(`${l.prefix} is a relonix prefix that relonix demo did not make; the demo bootstraps only prefixes of its own`, {
    kind: 'usage',
    hint: 'run relonix demo without --prefix (it uses its own), or with --prefix of a new directory',
  });
}

/** Whether a state records any bootstrap work in its store dir. */
function started(s: BootstrapState): boolean {
  return !!s.nix || Object.keys(s.stages).length > 0;
}

/**
 * Everything a bootstrap checks before it writes under the prefix: a usable path, a directory it
 * can create, nobody else's files in it, the store dir it was bootstrapped with, and, for the demo,
 * a prefix of the demo's own. Returns the prefix's state.
 */
export async function admitPrefix(l: Layout, o: { demo?: boolean } = {}): Promise<BootstrapState> {
  checkPrefixPaths(l);
  await createPrefix(l);
  const names = await inTheWay(l.prefix);
  if (names.length) throw prefixNotEmpty(l.prefix, names);
  const s = await readState(l);
  if (s.storeDir !== l.storeDir && started(s)) throw storeDirChanged(l, s.storeDir);
  if (o.demo && started(s) && s.madeBy !== 'demo') throw notTheDemos(l);
  return s;
}
