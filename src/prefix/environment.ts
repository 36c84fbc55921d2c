import { promises as fs } from 'node:fs';
import path from 'node:path';
import { passwdName } from '../host/passwd.ts';
import { exists, writeFileAtomic } from '../util/fs.ts';
import { fishQuote, shQuote } from '../util/shell.ts';
import type { Layout } from './layout.ts';
import { noNix, readState, usableNix } from './state.ts';

export interface NixEnvOptions {
  /** the environment to start from; defaults to process.env */
  base?: NodeJS.ProcessEnv;
  /** store path of the active Nix; its bin/ goes on PATH after the profile */
  nix?: string;
  /** store path of the CA bundle package */
  cacert?: string;
  /** the ssh config of the prefix's remote builders, when it has some */
  sshConfig?: string;
  /** the prefix has a translator: its bin/ wrappers, which start it, go first on PATH */
  wrappers?: boolean;
}

/**
 * Only the variables relonix sets, so they can be printed for a shell or merged into a child's env.
 * Besides the store, state, log and conf dirs, they name the active Nix's own directories, which a
 * relocated Nix would otherwise take from the paths it was compiled with (README, "compiled-in
 * paths"): its bin dir (nix-channel runs nix-env from it; 2.24 runs its build hook as
 * `$NIX_BIN_DIR/nix __build-remote`), its libexec dir (2.8's build hook is
 * `$NIX_LIBEXEC_DIR/nix/build-remote`, run before every build), its data dir, and its man pages.
 */
export function nixVariables(l: Layout, opts: NixEnvOptions = {}): Record<string, string> {
  const base = opts.base ?? process.env;
  // the active Nix when known; before one is registered, the profile that will hold it
  const nixDir = opts.nix ?? l.profile;
  const vars: Record<string, string> = {
    NIX_STORE_DIR: l.storeDir,
    NIX_STATE_DIR: l.stateDir,
    NIX_LOG_DIR: l.logDir,
    NIX_CONF_DIR: l.confDir,
    // the profile's bundle follows profile upgrades; the cacert path is the fallback before a profile exists
    NIX_SSL_CERT_FILE: opts.cacert
      ? path.join(opts.cacert, 'etc', 'ssl', 'certs', 'ca-bundle.crt')
      : path.join(l.profile, 'etc', 'ssl', 'certs', 'ca-bundle.crt'),
    NIX_BIN_DIR: path.join(nixDir, 'bin'),
    NIX_LIBEXEC_DIR: path.join(nixDir, 'libexec'),
    NIX_DATA_DIR: path.join(nixDir, 'share'),
    // nix-env installs into the profile that holds Nix, which is the one on PATH (not ~/.nix-profile)
    NIX_PROFILE: l.profile,
    // Nix's own ssh (remote builders) takes its options from here: the builders' ports and keys
    ...(opts.sshConfig ? { NIX_SSHOPTS: `-F ${opts.sshConfig}` } : {}),
  };
  vars.PATH = prependSearchPath(binDirs(l, opts.nix, opts.wrappers), base.PATH ?? '/usr/local/bin:/usr/bin:/bin');
  // an empty entry at the end keeps man's own search path after the prefix's pages
  vars.MANPATH = prependSearchPath(manDirs(l, opts.nix), base.MANPATH ?? '');
  // Nix stops with "cannot figure out user name" without USER on a uid that has no passwd entry
  if (!base.USER) vars.USER = userName();
  if (!base.HOME) vars.HOME = path.join(l.prefix, 'home');
  return vars;
}

function binDirs(l: Layout, nix?: string, wrappers?: boolean): string[] {
  return [...(wrappers ? [l.binDir] : []), path.join(l.profile, 'bin'), ...(nix ? [path.join(nix, 'bin')] : [])];
}

/** Whether the prefix has a translator, whose wrappers must come first on PATH. */
async function hasTranslator(l: Layout): Promise<boolean> {
  return exists(l.translatorScript);
}

function manDirs(l: Layout, nix?: string): string[] {
  return [path.join(l.profile, 'share', 'man'), ...(nix ? [path.join(nix, 'share', 'man')] : [])];
}

/** `dirs`, then the entries of `rest` that are not among them (an empty `rest` leaves a trailing colon). */
function prependSearchPath(dirs: string[], rest: string): string {
  const others = rest.split(':').filter((p) => p && !dirs.includes(p));
  return [...dirs, ...(others.length ? others : [''])].join(':');
}

export function nixEnvironment(l: Layout, opts: NixEnvOptions = {}): NodeJS.ProcessEnv {
  const base = opts.base ?? process.env;
  return { ...base, ...nixVariables(l, opts) };
}

/** The uid's name, or `uidN` when it has no passwd entry. */
function userName(): string {
  return passwdName() ?? `uid${process.getuid?.() ?? 'unknown'}`;
}

/** The active Nix of a prefix, or a clear error saying to bootstrap it first. */
export async function activeNix(l: Layout): Promise<{ nix: string; cacert?: string }> {
  const usable = await usableNix(await readState(l));
  if (!usable) throw noNix(l.prefix);
  return usable;
}

/** The variables for this prefix; HOME, when the host gives none, is created under the prefix. */
export async function prefixVariables(l: Layout, base: NodeJS.ProcessEnv = process.env): Promise<Record<string, string>> {
  const a = await activeNix(l);
  const vars = nixVariables(l, { ...a, base, sshConfig: await builderSshConfig(l), wrappers: await hasTranslator(l) });
  if (vars.HOME) await fs.mkdir(vars.HOME, { recursive: true });
  return vars;
}

/** The environment a Nix command of this prefix runs in: `base` with prefixVariables over it. */
export async function prefixEnvironment(l: Layout, base: NodeJS.ProcessEnv = process.env): Promise<NodeJS.ProcessEnv> {
  return { ...base, ...(await prefixVariables(l, base)) };
}

/** The ssh config relonix builder add wrote, when the prefix has remote builders. */
export async function builderSshConfig(l: Layout): Promise<string | undefined> {
  return (await exists(l.sshConfig)) ? l.sshConfig : undefined;
}

export type Shell = 'sh' | 'fish' | 'json';

/** Pure: `export` lines for the given variables, quoted for the shell. */
export function renderEnv(vars: Record<string, string>, shell: Shell): string {
  if (shell === 'json') return `${JSON.stringify(vars, null, 2)}\n`;
  let out = '';
  for (const [k, v] of Object.entries(vars)) {
    if (shell === 'fish') {
      const value = k === 'PATH' ? v.split(':').filter(Boolean).map(fishQuote).join(' ') : fishQuote(v);
      out += `set -gx ${k} ${value};\n`;
    } else {
      out += `export ${k}=${shQuote(v)}\n`;
    }
  }
  return out;
}

/**
 * Pure: the sourced profile scripts. Unlike `relonix env`, which prints the values for this shell
 * right now, these prepend to whatever PATH the sourcing shell has and fill USER/HOME only when unset.
 */
export function envScripts(l: Layout, nix?: string, cacert?: string, sshConfig?: string, wrappers?: boolean): { sh: string; fish: string } {
  const vars = nixVariables(l, { nix, cacert, sshConfig, base: { PATH: '', MANPATH: '', USER: 'x', HOME: 'x' } });
  const bins = binDirs(l, nix, wrappers);
  const mans = manDirs(l, nix);
  delete vars.PATH;
  delete vars.MANPATH;
  let sh = `# relonix: the environment for the Nix in ${shQuote(l.prefix)}. Source it: . ${shQuote(l.envScript)}\n`;
  sh += renderEnv(vars, 'sh');
  sh += `export PATH=${bins.map(shQuote).join(':')}\${PATH:+:$PATH}\n`;
  // unset, MANPATH ends in a colon: man's own pages still follow
  sh += `export MANPATH=${mans.map(shQuote).join(':')}:\${MANPATH:-}\n`;
  sh += `[ -n "\${USER:-}" ] || export USER="$(id -un 2>/dev/null || echo uid$(id -u))"\n`;
  sh += `[ -n "\${HOME:-}" ] || export HOME=${shQuote(path.join(l.prefix, 'home'))}\n`;
  let fish = `# relonix: the environment for the Nix in ${fishQuote(l.prefix)}. Source it: source ${fishQuote(l.envScriptFish)}\n`;
  fish += renderEnv(vars, 'fish');
  fish += `set -gx PATH ${bins.map(fishQuote).join(' ')} $PATH;\n`;
  fish += `set -q MANPATH; or set -gx MANPATH '';\n`;
  fish += `set -gx MANPATH ${mans.map(fishQuote).join(' ')} $MANPATH;\n`;
  fish += `set -q USER; or set -gx USER (id -un 2>/dev/null; or echo uid(id -u));\n`;
  fish += `set -q HOME; or set -gx HOME ${fishQuote(path.join(l.prefix, 'home'))};\n`;
  return { sh, fish };
}

/** Writes the sourced profile scripts (which the wrappers source too) as the prefix is now. */
export async function writeEnvScripts(l: Layout, nix?: string, cacert?: string): Promise<void> {
  const scripts = envScripts(l, nix, cacert, await builderSshConfig(l), await hasTranslator(l));
  // side by side: each write waits on its own fsync
  await Promise.all([writeFileAtomic(l.envScript, scripts.sh), writeFileAtomic(l.envScriptFish, scripts.fish)]);
}

const WRAPPER_MARK = '# relonix wrapper:';

/** Pure: a wrapper that runs `tool` of the active Nix with the prefix's environment. */
export function wrapperScript(l: Layout, nix: string, tool: string): string {
  return [
    '#!/bin/sh',
    `${WRAPPER_MARK} ${tool} of the Nix in ${shQuote(l.prefix)}, with its environment, from any PATH (and as`,
    '# the remote-program of a remote builder)',
    `. ${shQuote(l.envScript)}`,
    // the translator, when the prefix has one, runs while this command does (its pid is kept across exec)
    `[ ! -r ${shQuote(l.translatorScript)} ] || . ${shQuote(l.translatorScript)}`,
    `exec ${shQuote(path.join(nix, 'bin', tool))} "$@"`,
    '',
  ].join('\n');
}

/** Whether `file` is a wrapper relonix wrote (anything else in bin/ is the user's). */
export async function isWrapper(file: string): Promise<boolean> {
  const head = await fs.readFile(file, 'utf8').then(
    (t) => t.slice(0, 200),
    () => '',
  );
  return head.includes(WRAPPER_MARK);
}

/**
 * One wrapper in the prefix's bin/ per program of the active Nix; wrappers of programs it no longer
 * has go (only files relonix wrote: anything else there is the user's).
 */
export async function writeWrappers(l: Layout, nix: string): Promise<string[]> {
  // a Nix without bin/ gets no wrappers (verify is where a broken Nix is reported)
  const tools = (await fs.readdir(path.join(nix, 'bin')).catch(() => [] as string[])).sort();
  await fs.mkdir(l.binDir, { recursive: true });
  for (const name of await fs.readdir(l.binDir)) {
    if (tools.includes(name)) continue;
    const p = path.join(l.binDir, name);
    if (await isWrapper(p)) await fs.rm(p, { force: true });
  }
  // side by side: each write waits on its own fsync
  await Promise.all(tools.map((tool) => writeFileAtomic(path.join(l.binDir, tool), wrapperScript(l, nix, tool), 0o755)));
  return tools;
}
