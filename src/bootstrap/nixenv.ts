import os from 'node:os';
import path from 'node:path';
import type { Layout } from '../store/layout.ts';

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
