// netrc files: where HTTP credentials live instead of in URLs, for relonix's own requests and for
// the prefix's Nix (curl reads the same format). Credentials written here are for the user's eyes
// only: the file is created with mode 0600 and never widened.
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RelonixError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import type { UrlCredentials } from '../util/redact.ts';

/** One `machine` (or, with no machine, the `default`) entry. */
export interface NetrcEntry {
  machine?: string;
  login?: string;
  password?: string;
}

/** Pure: the entries of a netrc file (`machine`, `default`, `login`, `password`; other tokens skipped). */
export function parseNetrc(text: string): NetrcEntry[] {
  const toks = text.split(/\s+/).filter(Boolean);
  const entries: NetrcEntry[] = [];
  let cur: NetrcEntry | undefined;
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    if (t === 'machine' || t === 'default') {
      cur = t === 'machine' ? { machine: toks[++i] } : {};
      entries.push(cur);
    } else if (t === 'login' && cur) cur.login = toks[++i];
    else if (t === 'password' && cur) cur.password = toks[++i];
  }
  return entries;
}

/**
 * The login and password for `host`: from `first` (a prefix's netrc) when it names the host, else
 * from $NETRC or ~/.netrc (its entry for the host, else its `default`).
 */
export function netrcCredentials(host: string, first?: string): { login: string; password: string } | undefined {
  const read = (f: string | undefined) => {
    try {
      return f ? parseNetrc(readFileSync(f, 'utf8')) : [];
    } catch {
      return [];
    }
  };
  const complete = (e: NetrcEntry | undefined) => (e?.login !== undefined && e.password !== undefined ? { login: e.login, password: e.password } : undefined);
  const own = complete(read(first).find((x) => x.machine === host));
  if (own) return own;
  const entries = read(process.env.NETRC ?? userNetrc());
  return complete(entries.find((x) => x.machine === host) ?? entries.find((x) => x.machine === undefined));
}

function userNetrc(): string | undefined {
  let home: string | undefined = process.env.HOME;
  if (!home) {
    // a uid with no passwd entry and no HOME (rootless containers) has no ~/.netrc
    try {
      home = os.homedir();
    } catch {
      home = undefined;
    }
  }
  return home ? path.join(home, '.netrc') : undefined;
}

/** A token curl and relonix read back as one: no whitespace, and not empty. */
function netrcToken(s: string): boolean {
  return s.length > 0 && !/\s/.test(s);
}

/**
 * Adds (or replaces) the entries for these machines in `file`, keeping every other entry, through
 * a temporary created with mode 0600: the credentials are never readable by anyone else, even for
 * a moment. A login or password with whitespace cannot be written to a netrc and is refused.
 */
export async function saveNetrcCredentials(file: string, creds: UrlCredentials[]): Promise<void> {
  if (creds.length === 0) return;
  for (const c of creds) {
    if (![c.machine, c.login, c.password].every(netrcToken)) {
      throw netrcCannotCarry(c.machine);
    }
  }
  const old = parseNetrc(await fs.readFile(file, 'utf8').catch(() => ''));
  const machines = new Set(creds.map((c) => c.machine));
  const kept = old.filter((e) => e.machine === undefined || !machines.has(e.machine));
  const line = (e: NetrcEntry) =>
    `${e.machine === undefined ? 'default' : `machine ${e.machine}`}${e.login !== undefined ? ` login ${e.login}` : ''}${e.password !== undefined ? ` password ${e.password}` : ''}\n`;
  // a default entry must come last, or curl never reads past it
  const ordered = [...kept.filter((e) => e.machine !== undefined), ...creds, ...kept.filter((e) => e.machine === undefined)];
  await writeFileAtomic(file, ordered.map(line).join(''), 0o600);
}

/** Credentials a netrc file cannot hold (empty, or with whitespace): never written half-right. */
export function netrcCannotCarry(machine: string): RelonixError {
  return new RelonixError(`the credentials given for ${machine} are empty or hold whitespace, which a netrc file cannot carry`, {
    kind: 'usage',
    hint: 'use a login and password without spaces (percent-encoded in the URL), or put them in a netrc file yourself',
  });
}
