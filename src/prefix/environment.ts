import os from 'node:os';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Layout } from './layout.ts';
import { readState } from './state.ts';
import { RelonixError } from '../util/errors.ts';
import { exists } from '../util/fs.ts';

export interface NixEnvOptions {
  /** the environment to start from; defaults to process.env */
  base?: NodeJS.ProcessEnv;
  /** store path of the active Nix; its bin/ goes on PATH after the profile */
  nix?: string;
  /** store path of the CA bundle package */
  cacert?: string;
}

/** Only the variables relonix sets, so they can be printed for a shell or merged into a child's env. */
export function nixVariables(l: Layout, opts: NixEnvOptions = {}): Record<string, string> {
  const base = opts.base ?? process.env;
  const vars: Record<string, string> = {
    NIX_STORE_DIR: l.storeDir,
    NIX_STATE_DIR: l.stateDir,
    NIX_LOG_DIR: l.logDir,
    NIX_CONF_DIR: l.confDir,
    // the profile's bundle follows profile upgrades; the cacert path is the fallback before a profile exists
    NIX_SSL_CERT_FILE: opts.cacert
      ? path.join(opts.cacert, 'etc', 'ssl', 'certs', 'ca-bundle.crt')
      : path.join(l.profile, 'etc', 'ssl', 'certs', 'ca-bundle.crt'),
  };
  const bins = [path.join(l.profile, 'bin')];
  if (opts.nix) bins.push(path.join(opts.nix, 'bin'));
  const oldPath = base.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  vars.PATH = [...bins, ...oldPath.split(':').filter((p) => p && !bins.includes(p))].join(':');
  // Nix stops with "cannot figure out user name" without USER on a uid that has no passwd entry
  if (!base.USER) vars.USER = userName();
  if (!base.HOME) vars.HOME = path.join(l.prefix, 'home');
  return vars;
}

export function nixEnvironment(l: Layout, opts: NixEnvOptions = {}): NodeJS.ProcessEnv {
  const base = opts.base ?? process.env;
  return { ...base, ...nixVariables(l, opts) };
}

function userName(): string {
  try {
    const u = os.userInfo().username;
    if (u) return u;
  } catch {
    // no passwd entry for this uid
  }
  return `uid${process.getuid?.() ?? 'unknown'}`;
}

/** The active Nix of a prefix, or a clear error saying to bootstrap it first. */
export async function activeNix(l: Layout): Promise<{ nix: string; cacert?: string }> {
  const s = await readState(l);
  if (!s.nix || !(await exists(path.join(s.nix, 'bin', 'nix')))) {
    throw new RelonixError(`no Nix is installed in ${l.prefix} yet`, {
      kind: 'failure',
      hint: `run relonix bootstrap${l.prefix === '/tmp/nix' ? '' : ` --prefix ${l.prefix}`} first`,
    });
  }
  return { nix: s.nix, cacert: s.cacert };
}

/** The variables for this prefix; HOME, when the host gives none, is created under the prefix. */
export async function prefixVariables(l: Layout, base: NodeJS.ProcessEnv = process.env): Promise<Record<string, string>> {
  const a = await activeNix(l);
  const vars = nixVariables(l, { ...a, base });
  if (vars.HOME) await fs.mkdir(vars.HOME, { recursive: true });
  return vars;
}

export async function prefixEnvironment(l: Layout, base: NodeJS.ProcessEnv = process.env): Promise<NodeJS.ProcessEnv> {
  const a = await activeNix(l);
  const env = nixEnvironment(l, { ...a, base });
  if (!base.HOME && env.HOME) await fs.mkdir(env.HOME, { recursive: true });
  return env;
}

function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function fishQuote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export type Shell = 'sh' | 'fish' | 'json';

/** Pure: `export` lines for the given variables, quoted for the shell. */
export function renderEnv(vars: Record<string, string>, shell: Shell): string {
  if (shell === 'json') return JSON.stringify(vars, null, 2) + '\n';
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
export function envScripts(l: Layout, nix?: string, cacert?: string): { sh: string; fish: string } {
  const vars = nixVariables(l, { nix, cacert, base: { PATH: '', USER: 'x', HOME: 'x' } });
  const bins = vars.PATH!.split(':').filter(Boolean);
  delete vars.PATH;
  let sh = `# relonix: the environment for the Nix in ${l.prefix}. Source it: . ${l.envScript}\n`;
  sh += renderEnv(vars, 'sh');
  sh += `export PATH=${bins.map(shQuote).join(':')}\${PATH:+:\$PATH}\n`;
  sh += `[ -n "\${USER:-}" ] || export USER="$(id -un 2>/dev/null || echo uid$(id -u))"\n`;
  sh += `[ -n "\${HOME:-}" ] || export HOME=${shQuote(path.join(l.prefix, 'home'))}\n`;
  let fish = `# relonix: the environment for the Nix in ${l.prefix}. Source it: source ${l.envScriptFish}\n`;
  fish += renderEnv(vars, 'fish');
  fish += `set -gx PATH ${bins.map(fishQuote).join(' ')} $PATH;\n`;
  fish += `set -q USER; or set -gx USER (id -un 2>/dev/null; or echo uid(id -u));\n`;
  fish += `set -q HOME; or set -gx HOME ${fishQuote(path.join(l.prefix, 'home'))};\n`;
  return { sh, fish };
}
