// The prefix: where everything lives (layout), what the bootstrap finished (state), the environment
// its Nix needs (environment, wrappers, profile), running its Nix (tools) and what it holds (inspect).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { RelonixError } from '../util/errors.ts';

export const DEFAULT_PREFIX = '/tmp/nix';

/** Every path relonix reads or writes under a prefix; one place so commands never disagree. */
export interface Layout {
  prefix: string;
  storeDir: string;
  stateDir: string;
  logDir: string;
  confDir: string;
  confFile: string;
  /** credentials of the prefix's caches (mode 0600): Nix reads $NIX_CONF_DIR/netrc, and so does relonix */
  netrcFile: string;
  envScript: string;
  envScriptFish: string;
  /** wrappers that run the active Nix's programs with the prefix's environment */
  binDir: string;
  profile: string;
  relonixDir: string;
  stateFile: string;
  lockFile: string;
  reportFile: string;
  downloadsDir: string;
  stagingDir: string;
  /** relonix build's queue of finished derivations, its post-build hook and its lock */
  buildDir: string;
  /** held by relonix build for the whole build (the prefix's own lock only while it changes it) */
  buildLockFile: string;
  /** the remote builders relonix builder add recorded, from which the three files below are made */
  buildersFile: string;
  /** Nix's machines file (`builders = @…` in nix.conf) */
  machinesFile: string;
  /** ssh options of the builders (NIX_SSHOPTS=-F …): their ports, users and keys */
  sshConfig: string;
  knownHosts: string;
  /** the on-demand translator of upstream's binaries: its key, config, file cache and run files */
  translatorDir: string;
  /** what the bin/ wrappers source to have the translator run while their command does (only when it is set up) */
  translatorScript: string;
}

export function resolvePrefix(flag?: string): string {
  const raw = flag ?? process.env.RELONIX_PREFIX ?? DEFAULT_PREFIX;
  if (!raw) {
    throw emptyPrefix(flag === undefined ? 'RELONIX_PREFIX is set to ""' : '--prefix ""');
  }
  return path.resolve(raw);
}

/** --prefix "" or RELONIX_PREFIX="" (`given`: which of the two). */
export function emptyPrefix(given: string): RelonixError {
  return new RelonixError(`the prefix is empty (${given})`, {
    kind: 'usage',
    hint: `pass --prefix DIR, or leave RELONIX_PREFIX unset for the default ${DEFAULT_PREFIX}`,
  });
}

/**
 * A store dir as given to `bootstrap --store-dir`: absolute, normalised, and not `/` itself (Nix
 * refuses a store dir with a trailing slash, and one that is the root holds everything).
 */
export function checkStoreDir(dir: string): string {
  const d = path.resolve(dir);
  if (!path.isAbsolute(dir) || d === '/' || d !== dir.replace(/\/+$/, '')) {
    throw badStoreDir(dir);
  }
  return d;
}

/** A --store-dir that is relative, not normalised, or / itself. */
export function badStoreDir(dir: string): RelonixError {
  return new RelonixError(`--store-dir must be an absolute, normalised directory other than /, got "${dir}"`, {
    kind: 'usage',
    hint: 'e.g. --store-dir /tmp/store (as long as /nix/store, so that binaries from cache.nixos.org can be translated)',
  });
}

/** A store dir that is the prefix, or holds it. */
export function storeDirHoldsPrefix(storeDir: string, prefix: string): RelonixError {
  return new RelonixError(`the store dir ${storeDir} would hold the prefix ${prefix}`, {
    kind: 'usage',
    hint: 'choose a store dir beside the prefix, e.g. --store-dir /tmp/store',
  });
}

/**
 * The store dir a prefix was bootstrapped with, as its state file records it: every command finds a
 * store dir outside the prefix from there. Read synchronously because every command needs a layout
 * before anything else, and the file is small.
 */
function recordedStoreDir(stateFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(stateFile, 'utf8');
  } catch {
    return undefined; // no bootstrap yet: the default
  }
  try {
    const dir = (JSON.parse(text) as { storeDir?: unknown }).storeDir;
    return typeof dir === 'string' && path.isAbsolute(dir) ? dir : undefined;
  } catch {
    return undefined; // readState reports a broken state file where it matters
  }
}

/** The length of `/nix/store`: a store dir this long takes upstream's binaries rewritten in place. */
export const UPSTREAM_STORE_DIR_BYTES = Buffer.byteLength('/nix/store');

/** A new prefix's store dir: `PREFIX/s` where that is as long as `/nix/store` (`/tmp/nix/s`), else `PREFIX/store`. */
export function defaultStoreDir(prefix: string): string {
  const short = path.join(prefix, 's');
  return Buffer.byteLength(short) === UPSTREAM_STORE_DIR_BYTES ? short : path.join(prefix, 'store');
}

/**
 * The layout of a prefix. Its store dir is `storeDirFlag` (bootstrap --store-dir), else the one
 * its state records (a prefix is never moved), else the default for a new prefix.
 */
export function layout(prefixFlag?: string, storeDirFlag?: string): Layout {
  const prefix = resolvePrefix(prefixFlag);
  const relonixDir = path.join(prefix, 'var', 'relonix');
  const stateDir = path.join(prefix, 'var', 'nix');
  const stateFile = path.join(relonixDir, 'state.json');
  const storeDir = storeDirFlag !== undefined ? checkStoreDir(storeDirFlag) : (recordedStoreDir(stateFile) ?? defaultStoreDir(prefix));
  if (prefix === storeDir || prefix.startsWith(`${storeDir}/`)) {
    throw storeDirHoldsPrefix(storeDir, prefix);
  }
  return {
    prefix,
    storeDir,
    stateDir,
    logDir: path.join(prefix, 'var', 'log', 'nix'),
    confDir: path.join(prefix, 'etc', 'nix'),
    confFile: path.join(prefix, 'etc', 'nix', 'nix.conf'),
    netrcFile: path.join(prefix, 'etc', 'nix', 'netrc'),
    envScript: path.join(prefix, 'etc', 'profile.d', 'relonix.sh'),
    envScriptFish: path.join(prefix, 'etc', 'profile.d', 'relonix.fish'),
    binDir: path.join(prefix, 'bin'),
    profile: path.join(stateDir, 'profiles', 'default'),
    relonixDir,
    stateFile,
    lockFile: path.join(relonixDir, 'lock'),
    reportFile: path.join(relonixDir, 'relocation-report.json'),
    downloadsDir: path.join(relonixDir, 'downloads'),
    stagingDir: path.join(relonixDir, 'staging'),
    buildDir: path.join(relonixDir, 'build'),
    buildLockFile: path.join(relonixDir, 'build', 'lock'),
    buildersFile: path.join(relonixDir, 'builders.json'),
    machinesFile: path.join(prefix, 'etc', 'nix', 'machines'),
    sshConfig: path.join(prefix, 'etc', 'ssh', 'config'),
    knownHosts: path.join(prefix, 'etc', 'ssh', 'known_hosts'),
    translatorDir: path.join(relonixDir, 'translator'),
    translatorScript: path.join(relonixDir, 'translator', 'ensure.sh'),
  };
}
