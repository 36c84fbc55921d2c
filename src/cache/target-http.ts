// A cache on an HTTP origin that takes PUT and DELETE (WebDAV, nginx's dav module, Nix's own http
// store layout): HEAD to test, GET to read, PUT to write. Credentials from the URL, --header or netrc.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Body, httpFailure, request, transientBody } from '../net/http.ts';
import { RelonixError } from '../util/errors.ts';
import type { CacheTarget } from './target.ts';

export interface TargetOptions {
  /** extra request headers, `Name: value` */
  headers?: string[];
  /** netrc file; default $NETRC, else ~/.netrc */
  netrc?: string;
}

function parseHeaders(list: string[] = []): Record<string, string> {
  const h: Record<string, string> = {};
  for (const line of list) {
    const i = line.indexOf(':');
    if (i <= 0) throw new RelonixError(`--header "${line}" is not of the form "Name: value"`, { kind: 'usage' });
    h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return h;
}

/** login/password for a host from a netrc file (`machine`, `default`, `login`, `password`). */
export function netrcCredentials(host: string, file?: string): { login: string; password: string } | undefined {
  let home: string | undefined = process.env.HOME;
  if (!home) {
    // a uid with no passwd entry and no HOME (rootless containers) has no ~/.netrc
    try {
      home = os.homedir();
    } catch {
      home = undefined;
    }
  }
  const f = file ?? process.env.NETRC ?? (home ? path.join(home, '.netrc') : undefined);
  if (!f) return undefined;
  let text: string;
  try {
    text = readFileSync(f, 'utf8');
  } catch {
    return undefined;
  }
  const toks = text.split(/\s+/).filter(Boolean);
  let cur: { machine?: string; login?: string; password?: string } | undefined;
  const entries: (typeof cur)[] = [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    if (t === 'machine' || t === 'default') {
      cur = { machine: t === 'machine' ? toks[++i] : undefined };
      entries.push(cur);
    } else if (t === 'login' && cur) cur.login = toks[++i];
    else if (t === 'password' && cur) cur.password = toks[++i];
  }
  const e = entries.find((x) => x?.machine === host) ?? entries.find((x) => x && x.machine === undefined);
  return e?.login !== undefined && e.password !== undefined ? { login: e.login, password: e.password } : undefined;
}

export class HttpTarget implements CacheTarget {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  constructor(
    readonly url: string,
    opts: TargetOptions,
  ) {
    this.base = url.replace(/\/+$/, '');
    this.headers = parseHeaders(opts.headers);
    const u = new URL(url);
    if (!this.headers.authorization) {
      const cred = u.username ? { login: decodeURIComponent(u.username), password: decodeURIComponent(u.password) } : netrcCredentials(u.hostname, opts.netrc);
      if (cred) this.headers.authorization = `Basic ${Buffer.from(`${cred.login}:${cred.password}`).toString('base64')}`;
    }
    if (u.username) {
      u.username = '';
      u.password = '';
      this.base = u.toString().replace(/\/+$/, '');
    }
  }
  private u(key: string) {
    return `${this.base}/${key}`;
  }
  private send(method: string, key: string, body?: Body, contentType?: string) {
    const headers = contentType ? { ...this.headers, 'content-type': contentType } : this.headers;
    return request(this.u(key), { method, headers, body });
  }
  httpSource(key: string) {
    return { url: this.u(key), headers: { ...this.headers } };
  }
  async has(key: string) {
    const r = await this.send('HEAD', key);
    r.drop();
    if (r.status >= 200 && r.status < 300) return true;
    if (r.status === 404 || r.status === 403 || r.status === 410) return false;
    throw await httpFailure(r, `HEAD ${this.u(key)}`);
  }
  async get(key: string) {
    const r = await this.send('GET', key);
    if (r.status === 404 || r.status === 410) {
      r.drop();
      return undefined;
    }
    if (r.status < 200 || r.status >= 300) throw await httpFailure(r, `GET ${this.u(key)}`);
    return r.buffer();
  }
  /** The object as it arrives (no resuming: restores go through httpSource and a resumable download). */
  async openRead(key: string) {
    const r = await this.send('GET', key);
    if (r.status === 404 || r.status === 410) {
      r.drop();
      return undefined;
    }
    if (r.status < 200 || r.status >= 300) throw await httpFailure(r, `GET ${this.u(key)}`);
    return transientBody(r, `GET ${this.u(key)}`);
  }
  async put(key: string, data: Buffer, contentType: string) {
    await this.write(key, data, contentType);
  }
  async putFile(key: string, file: string, size: number, _sha256hex: string, contentType: string) {
    await this.write(key, { file, size }, contentType);
  }
  private async write(key: string, body: Body, contentType: string) {
    const r = await this.send('PUT', key, body, contentType);
    if (r.status < 200 || r.status >= 300) throw await httpFailure(r, `PUT ${this.u(key)}`);
    r.drop();
  }
  async delete(key: string) {
    const r = await this.send('DELETE', key);
    if ((r.status < 200 || r.status >= 300) && r.status !== 404) throw await httpFailure(r, `DELETE ${this.u(key)}`);
    r.drop();
  }
}
