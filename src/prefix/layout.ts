// The prefix: where everything lives (layout), what the bootstrap finished (state), the environment
// its Nix needs (environment, wrappers, profile), running its Nix (tools) and what it holds (inspect).
import path from 'node:path';

export const DEFAULT_PREFIX = '/tmp/nix';

/** Every path relonix reads or writes under a prefix; one place so commands never disagree. */
export interface Layout {
  prefix: string;
  storeDir: string;
  stateDir: string;
  logDir: string;
  confDir: string;
  confFile: string;
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
}

export function resolvePrefix(flag?: string): string {
  const raw = flag ?? process.env.RELONIX_PREFIX ?? DEFAULT_PREFIX;
  if (!raw) throw new Error('the prefix is empty: pass --prefix DIR or set RELONIX_PREFIX');
  return path.resolve(raw);
}

export function layout(prefixFlag?: string): Layout {
  const prefix = resolvePrefix(prefixFlag);
  const relonixDir = path.join(prefix, 'var', 'relonix');
  const stateDir = path.join(prefix, 'var', 'nix');
  return {
    prefix,
    storeDir: path.join(prefix, 'store'),
    stateDir,
    logDir: path.join(prefix, 'var', 'log', 'nix'),
    confDir: path.join(prefix, 'etc', 'nix'),
    confFile: path.join(prefix, 'etc', 'nix', 'nix.conf'),
    envScript: path.join(prefix, 'etc', 'profile.d', 'relonix.sh'),
    envScriptFish: path.join(prefix, 'etc', 'profile.d', 'relonix.fish'),
    binDir: path.join(prefix, 'bin'),
    profile: path.join(stateDir, 'profiles', 'default'),
    relonixDir,
    stateFile: path.join(relonixDir, 'state.json'),
    lockFile: path.join(relonixDir, 'lock'),
    reportFile: path.join(relonixDir, 'relocation-report.json'),
    downloadsDir: path.join(relonixDir, 'downloads'),
    stagingDir: path.join(relonixDir, 'staging'),
    buildDir: path.join(relonixDir, 'build'),
  };
}
