// The remote builders of a prefix as data (var/relonix/builders.json) and the three files made
// from it: Nix's machines file, the ssh config that carries what Nix 2.8's ssh:// URI cannot (a
// port: its legacy ssh store hands the URI's authority to ssh as one host name), and nix.conf's
// builders block. Everything here is pure.
import path from 'node:path';
import type { Layout } from '../prefix/layout.ts';
import type { BlockMarks } from '../prefix/nix-conf.ts';
import { RelonixError } from '../util/errors.ts';

export interface Builder {
  /** as the user gave it and names it: ssh://USER@HOST[:PORT] */
  url: string;
  user?: string;
  host: string;
  port?: number;
  /** absolute path of the private key */
  key?: string;
  jobs: number;
  system: string;
}

export const BUILDERS_BLOCK: BlockMarks = {
  begin: '# BEGIN relonix builders: relonix builder add/remove rewrites the lines up to END',
  end: '# END relonix builders',
};

/** Pure: ssh://USER@HOST[:PORT], checked, in its canonical spelling. */
export function parseBuilderUrl(raw: string): Pick<Builder, 'url' | 'user' | 'host' | 'port'> {
  const bad = (why: string) => badBuilderUrl(raw, why);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw bad('not a URL');
  }
  if (u.protocol !== 'ssh:') throw bad("only ssh:// is supported (Nix's legacy ssh store)");
  if (!u.hostname) throw bad('no host');
  if (u.password) throw bad('a password cannot be given; use --key FILE');
  if ((u.pathname && u.pathname !== '/') || u.search || u.hash) throw bad('nothing may follow the host and port');
  const user = u.username ? decodeURIComponent(u.username) : undefined;
  const port = u.port ? Number(u.port) : undefined;
  const url = `ssh://${user ? `${user}@` : ''}${u.host}`;
  return { url, user, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

/** A builder address relonix cannot use, and why. */
export function badBuilderUrl(raw: string, why: string): RelonixError {
  return new RelonixError(`${raw} is not a builder address: ${why}`, {
    kind: 'usage',
    hint: 'write it ssh://USER@HOST or ssh://USER@HOST:PORT, e.g. ssh://builder@10.0.0.7:2222',
  });
}

/** Pure: the Host alias of a builder in the prefix's ssh config: what Nix's URI names. */
export function hostAlias(b: Pick<Builder, 'user' | 'host' | 'port'>): string {
  return `relonix-${[b.user ?? '', b.host, String(b.port ?? 22)].join('-').replace(/[^A-Za-z0-9.-]/g, '_')}`;
}

/** Pure: the ssh options of one builder, as config lines and as `-o` arguments alike. */
export function sshOptions(l: Layout, b: Builder): [string, string][] {
  return [
    ['HostName', b.host],
    ...(b.port ? [['Port', String(b.port)] as [string, string]] : []),
    ...(b.user ? [['User', b.user] as [string, string]] : []),
    ...(b.key ? [['IdentityFile', b.key] as [string, string], ['IdentitiesOnly', 'yes'] as [string, string]] : []),
    ['UserKnownHostsFile', l.knownHosts],
    // a builder whose key is not known is refused, never trusted on first use, and nothing prompts
    ['StrictHostKeyChecking', 'yes'],
    ['BatchMode', 'yes'],
  ];
}

export function sshConfigText(l: Layout, builders: Builder[]): string {
  // the prefix quoted in the comment too: no character of a path can end the comment line
  const head = `# relonix: ssh options of the remote builders of ${JSON.stringify(l.prefix)} (NIX_SSHOPTS=-F ${JSON.stringify(l.sshConfig)}).\n# relonix builder add/remove rewrites this file.\n`;
  return (
    head +
    builders
      .map(
        (b) =>
          `\nHost ${hostAlias(b)}\n${sshOptions(l, b)
            .map(([k, v]) => `  ${k} ${v}\n`)
            .join('')}`,
      )
      .join('')
  );
}

/** Pure: the remote-program of a builder: the wrapper of the remote prefix at the same path. */
export function remoteProgram(l: Layout): string {
  return path.join(l.binDir, 'nix-store');
}

/** Pure: Nix's machines file: URI, systems, ssh key (in the ssh config), jobs, speed factor. */
export function machinesText(l: Layout, builders: Builder[]): string {
  const lines = builders.map((b) => `ssh://${hostAlias(b)}?remote-program=${remoteProgram(l)} ${b.system} - ${b.jobs} 1`);
  return `# relonix builder add/remove rewrites this file (as ${JSON.stringify(l.buildersFile)} records them)\n${lines.join('\n')}\n`;
}

export function buildersBlock(l: Layout): string {
  return [
    BUILDERS_BLOCK.begin,
    `builders = @${l.machinesFile}`,
    '# a builder fetches what it can from its own caches instead of receiving it over ssh',
    'builders-use-substitutes = true',
    BUILDERS_BLOCK.end,
    '',
  ].join('\n');
}

/** Pure: the builders file's content, checked as far as relonix needs it. */
export function parseBuildersFile(text: string, file: string): Builder[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw badBuildersFile(file, `is not JSON: ${(e as Error).message}`);
  }
  const list = (v as { builders?: unknown }).builders;
  if (!Array.isArray(list) || !list.every((b) => typeof b?.url === 'string' && typeof b?.host === 'string' && typeof b?.system === 'string')) {
    throw badBuildersFile(file, 'does not list builders as relonix writes them');
  }
  return list as Builder[];
}

/** The prefix's builders file is not what relonix writes (`problem` follows its name). */
export function badBuildersFile(file: string, problem: string): RelonixError {
  return new RelonixError(`${file} ${problem}`, {
    kind: 'usage',
    hint: 'remove it and add the builders again (relonix builder add)',
  });
}
