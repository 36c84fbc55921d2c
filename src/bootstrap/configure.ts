import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../store/layout.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { nixVariables } from './nixenv.ts';

export const BEGIN = '# BEGIN relonix managed block: relonix rewrites the lines up to END; add your own settings outside it';
export const END = '# END relonix managed block';

export interface ConfigureInput {
  caches: string[];
  trustedKeys: string[];
}

/**
 * The settings a Nix needs on a host without root or namespaces. use-sqlite-wal is always false:
 * WAL needs shared-memory mmap that breaks on NFS, overlay and 9p, a prefix under /tmp can land on
 * any of them after a restart, and a single-user store loses next to nothing with a rollback journal.
 */
export function nixConfBlock(input: ConfigureInput): string {
  const lines = [
    BEGIN,
    '# no user namespaces or chroot on such hosts',
    'sandbox = false',
    '# no root, so no build users',
    'build-users-group =',
    'use-sqlite-wal = false',
    '# caches are filled by other builders while we run: never remember a miss',
    'narinfo-cache-negative-ttl = 0',
    // nothing on cache.nixos.org is built for this store dir, so only the given caches are useful
    `substituters = ${input.caches.join(' ')}`.trimEnd(),
    `trusted-public-keys = ${input.trustedKeys.join(' ')}`.trimEnd(),
    'require-sigs = true',
    END,
  ];
  return lines.join('\n') + '\n';
}

/** Pure: replaces the managed block in an existing nix.conf (or prepends it), keeping everything else. */
export function mergeNixConf(existing: string | undefined, block: string): string {
  if (!existing) return block;
  const start = existing.indexOf(BEGIN);
  const endAt = existing.indexOf(END);
  if (start !== -1 && endAt > start) {
    let after = endAt + END.length;
    if (existing[after] === '\n') after++;
    return existing.slice(0, start) + block + existing.slice(after);
  }
  // the block goes first so that the user's own lines, read later, win
  return block + (existing.startsWith('\n') ? '' : '\n') + existing;
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

export async function applyConfigure(l: Layout, input: ConfigureInput, nix?: string, cacert?: string): Promise<{ confFile: string }> {
  let existing: string | undefined;
  try {
    existing = await fs.readFile(l.confFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const next = mergeNixConf(existing, nixConfBlock(input));
  if (next !== existing) await writeFileAtomic(l.confFile, next);
  const scripts = envScripts(l, nix, cacert);
  await writeFileAtomic(l.envScript, scripts.sh);
  await writeFileAtomic(l.envScriptFish, scripts.fish);
  await fs.mkdir(path.join(l.prefix, 'home'), { recursive: true });
  await fs.mkdir(l.logDir, { recursive: true });
  await fs.mkdir(path.dirname(l.profile), { recursive: true });
  return { confFile: l.confFile };
}
