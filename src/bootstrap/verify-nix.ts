// The proof that a prefix's Nix works, shared by the verify and cache-nix stages and relonix doctor:
// the profile installed, the store verified, a check build, and every library from the store.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { interpreterOf } from '../elf/peek.ts';
import { hasBuilders, hookForms, noBuildHook } from '../prefix/build-hook.ts';
import { nixEnvironment } from '../prefix/environment.ts';
import type { Layout } from '../prefix/layout.ts';
import { userConfLines } from '../prefix/nix-conf.ts';
import { installProfile } from '../prefix/profile.ts';
import { runNix } from '../prefix/tools.ts';
import { RelonixError } from '../util/errors.ts';
import { clearStaleTemps, exists, readHead, writeFileAtomic } from '../util/fs.ts';
import { shQuote } from '../util/shell.ts';
import { runTool } from '../util/spawn.ts';
import type { VerifyResult } from './stage.ts';

const HINT = 're-run relonix bootstrap to retry from stage verify; relonix status shows what is done';

// no cache can have it (its path is this store dir's), so Nix asks none: a prefix whose substituter
// is the translator would otherwise wait seconds on it, retrying, wherever Nix runs without the
// bin/ wrappers that start it (this check does)
export const CHECK_EXPR = `derivation {
  name = "relonix-check";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo ok > $out" ];
  allowSubstitutes = false;
}
`;

/** The PT_INTERP string of an ELF file (64- or 32-bit, either byte order), or undefined. */
export { interpreterOf as elfInterpreter } from '../elf/peek.ts';

/** Pure: the libraries `ld.so --list` printed that do not come from the store dir. */
export function foreignLibraries(listOutput: string, storeDir: string): string[] {
  const out: string[] = [];
  for (const line of listOutput.split('\n')) {
    const m = /=>\s+(\S+)\s+\(/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (!m) {
      if (/=>\s+not found/.test(line)) out.push(line.trim());
      continue;
    }
    if (!m[1]!.startsWith(`${storeDir}/`)) out.push(m[1]!);
  }
  return out;
}

export interface VerifyOptions {
  /** hash every path's contents (the bootstrap's check of what it just wrote), not only the database */
  contents?: boolean;
  /** build the check derivation again even when its output exists (nix-build --check): proves building works now */
  rebuild?: boolean;
  /** make `nix` (and the CA bundle) the default profile's, beside the checks (a bootstrap's last step) */
  profile?: boolean;
  /** with `profile`: the Nix and CA bundle it replaces there, which leave it by name */
  replaces?: string[];
  /**
   * The store paths a bootstrap just registered: only they are checked (hashed with `contents`,
   * else found valid and present), beside the other checks, instead of the whole store after them
   */
  registered?: string[];
}

/**
 * Proves the relocated Nix works on its own: the store checks out, it runs, it builds, it loads only
 * store libraries; and with `profile`, installs it into the default profile at the same time.
 */
export async function applyVerify(
  l: Layout,
  nix: string,
  cacert: string | undefined,
  onProgress?: (t: string) => void,
  opts: VerifyOptions = { contents: true },
): Promise<VerifyResult> {
  const env = nixEnvironment(l, { nix, cacert });
  const bin = (n: string) => path.join(nix, 'bin', n);
  await checkBuildHook(l, nix);
  onProgress?.(`${opts.profile ? 'installing the profile, ' : ''}verifying the store, building a trivial derivation, checking libraries`);
  // independent jobs side by side, each waiting on its own process: Nix's database and locks let
  // the profile's build and the check build run at once. A check of the paths just registered only
  // reads, so it runs beside them; a check of the whole store comes last, alone: it lists the store,
  // then drops from the database every valid path the listing lacked, so a .drv or a profile
  // registered meanwhile would be lost ("path ... is not valid")
  // starting a process holds this thread until it runs (5-19 ms each once a bootstrap has grown this
  // process), so the longest goes first: after an unpack the contents check, which hashes every path
  // (verify stage of the 2.26 fixture, six alternating runs: median 107 ms with it last, 98 with it first);
  // then the check build (from the expression itself while check.nix is written for users) and the
  // profile's install, the two that start a Nix of their own after it
  const registered = (contents: boolean) => opts.registered && checkRegistered(l, bin('nix-store'), env, opts.registered, contents);
  const hashing = opts.contents ? registered(true) : undefined;
  const [checkOutput, , version, libs] = await Promise.all([
    checkBuild(l, bin('nix-build'), env, opts.rebuild ?? false),
    opts.profile ? installProfile(l, nix, [nix, ...(cacert ? [cacert] : [])], env, opts.replaces) : undefined,
    runNix(bin('nix'), ['--version'], { env, hint: HINT }).then((v) => v.trim()),
    checkLibraries(l, bin('nix')),
    writeCheckExpression(l),
    hashing ?? registered(false),
  ]);
  if (!opts.registered) await runNix(bin('nix-store'), ['--verify', ...(opts.contents ? ['--check-contents'] : [])], { env, hint: HINT });
  const { libraries, interpreter } = libs;
  return { version, checkOutput, libraries, interpreter };
}

/** Bytes of an ELF file's start that hold its PT_INTERP wherever a linker puts it: right after the program headers. */
const ELF_HEAD = 64 * 1024;

/**
 * The interpreter an ELF file names, read from its first bytes: the whole of a 12 MB nix binary,
 * read while the checks' processes start, held up their start by tens of milliseconds. A file whose
 * interpreter lies further in is read whole.
 */
export async function interpreterOfFile(file: string): Promise<string | undefined> {
  const head = await readHead(file, ELF_HEAD);
  const got = interpreterOf(head);
  if (got || head.length < ELF_HEAD) return got;
  return interpreterOf(await fs.readFile(file));
}

/** A prefix with builders needs a Nix with a build hook: said here, not as the dead hook's "unexpected EOF". */
async function checkBuildHook(l: Layout, nix: string): Promise<void> {
  const conf = await fs.readFile(l.confFile, 'utf8').catch(() => '');
  if (!(await hasBuilders(l, userConfLines(conf)))) return;
  const h = await hookForms(nix);
  if (h.remote === undefined) throw noBuildHook(l, h.why);
}

/** var/relonix/check.nix, the check derivation for users to build (relonix run -- nix-build …). */
async function writeCheckExpression(l: Layout): Promise<void> {
  const expr = path.join(l.relonixDir, 'check.nix');
  // written only when it differs, and what a run killed while writing it left is cleared: a
  // verify (relonix doctor's too) leaves the prefix's own files as they were
  await clearStaleTemps(expr);
  if ((await fs.readFile(expr, 'utf8').catch(() => '')) !== CHECK_EXPR) await writeFileAtomic(expr, CHECK_EXPR);
}

/** CHECK_EXPR on one line, as the check build is given it (and an error shows it). */
const CHECK_EXPR_LINE = CHECK_EXPR.replace(/\s*\n\s*/g, ' ').trim();

async function checkBuild(l: Layout, nixBuild: string, env: NodeJS.ProcessEnv, rebuild: boolean): Promise<string> {
  const build = async (more: string[]) =>
    (await runNix(nixBuild, ['--no-out-link', ...more, '-E', CHECK_EXPR_LINE], { env, hint: HINT })).trim().split('\n').pop() ?? '';
  let out = await build([]);
  // the output existed already, so nothing was built: build it again and compare
  if (rebuild) out = await build(['--check']);
  if (!out.startsWith(`${l.storeDir}/`)) {
    throw checkBuildWrong(`produced ${out}, outside ${l.storeDir}`);
  }
  const checkOutput = (await fs.readFile(out, 'utf8')).trim();
  if (checkOutput !== 'ok') throw checkBuildWrong(`wrote "${checkOutput}" instead of "ok"`);
  return checkOutput;
}

/**
 * The paths a bootstrap registered, as `nix-store --verify` would find them: each valid and in the
 * store, and with `contents` each one's contents hashed against its registered NAR hash.
 */
async function checkRegistered(l: Layout, nixStore: string, env: NodeJS.ProcessEnv, paths: string[], contents: boolean): Promise<void> {
  if (paths.length === 0) return;
  // --verify-path hashes each path (a missing one fails to read); --check-validity only asks the database
  await runNix(nixStore, [contents ? '--verify-path' : '--check-validity', ...paths], { env, hint: HINT });
  if (contents) return;
  const missing = [];
  for (const p of paths) if (!(await exists(p))) missing.push(p);
  if (missing.length) throw registeredMissing(l, missing);
}

/** Every library the Nix binary loads, and its loader, must come from the new store. */
async function checkLibraries(l: Layout, nixLink: string): Promise<{ libraries: number; interpreter: string }> {
  const nixBin = await fs.realpath(nixLink);
  const interpreter = await interpreterOfFile(nixBin);
  if (!interpreter?.startsWith(`${l.storeDir}/`)) {
    throw loaderNotRelocated(l, nixBin, interpreter);
  }
  const r = await runTool(interpreter, ['--list', nixBin], { PATH: process.env.PATH ?? '/usr/bin:/bin' });
  if (r.code !== 0) throw loaderListFailed(interpreter, nixBin, r.all.trim());
  const foreign = foreignLibraries(r.stdout, l.storeDir);
  if (foreign.length) {
    throw librariesNotRelocated(l, foreign);
  }
  return { libraries: r.stdout.split('\n').filter((x) => x.includes('=>')).length, interpreter };
}

/** The relocated Nix built the check derivation, but not as it should (elsewhere, or another output). */
export function checkBuildWrong(what: string): RelonixError {
  return new RelonixError(`the check build ${what}`, { hint: 'inspect etc/nix/nix.conf and the NIX_* variables (relonix env)' });
}

/** Paths the database holds as valid are gone from the store. */
export function registeredMissing(l: Layout, missing: string[]): RelonixError {
  const shown = missing.slice(0, 3).join(', ') + (missing.length > 3 ? `, … (${missing.length} in all)` : '');
  return new RelonixError(`the database registers paths that are missing from ${l.storeDir}: ${shown}`, {
    kind: 'integrity',
    hint: `something removed them after they were registered; remove the prefix (relonix uninstall --prefix ${shQuote(l.prefix)}) and bootstrap again`,
  });
}

/** The relocated Nix still names a dynamic linker outside the prefix's store. */
export function loaderNotRelocated(l: Layout, nixBin: string, interpreter: string | undefined): RelonixError {
  return new RelonixError(`${nixBin} still names the dynamic linker ${interpreter ?? '(none)'}, not one in ${l.storeDir}`, {
    kind: 'integrity',
    hint: `the relocate stage did not patch it; remove the prefix (relonix uninstall --prefix ${shQuote(l.prefix)}) and bootstrap again`,
  });
}

/** The relocated dynamic linker could not list what the relocated Nix loads. */
export function loaderListFailed(interpreter: string, nixBin: string, output: string): RelonixError {
  return new RelonixError(`${interpreter} --list ${nixBin} failed: ${output}`, {
    hint: 'the relocated dynamic linker cannot run here; relonix doctor says whether this host runs the binaries of the store',
  });
}

/** The relocated Nix loads libraries from outside the prefix's store. */
export function librariesNotRelocated(l: Layout, foreign: string[]): RelonixError {
  return new RelonixError(`the relocated Nix loads libraries from outside ${l.storeDir}: ${foreign.join(', ')}`, {
    kind: 'integrity',
    hint: `its RUNPATH still points elsewhere; remove the prefix (relonix uninstall --prefix ${shQuote(l.prefix)}) and bootstrap again, and report the tarball used`,
  });
}
