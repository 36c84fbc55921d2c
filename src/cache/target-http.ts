// A cache on an HTTP origin that takes PUT and DELETE (WebDAV, nginx's dav module, Nix's own http
// store layout): HEAD to test, GET to read, PUT to write. Credentials from the URL, --header or netrc.
import { type Body, contentLength, httpFailure, request, transientBody } from '../net/http.ts';
import { netrcCredentials } from '../net/netrc.ts';
import { RelonixError } from '../util/errors.ts';
import { redactUrl, splitCredentials } from '../util/redact.ts';
import type { CacheTarget } from './target.ts';

export interface TargetOptions {
  /** extra request headers, `Name: value` */
  headers?: string[];
  /** a netrc file read before $NETRC or ~/.netrc (the prefix's own, where bootstrap --cache keeps credentials) */
  netrc?: string;
}

function parseHeaders(list: string[] = []): Record<string, string> {
  const h: Record<string, string> = {};
  for (const [n, line] of list.entries()) {
    const i = line.indexOf(':');
    // the value may be a credential: the message names the option's position, never its text
    if (i <= 0) throw badHeader(n + 1);
    h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return h;
}

export class HttpTarget implements CacheTarget {
  /** the URL for messages: its credentials masked */
  readonly url: string;
  private readonly base: string;
  private readonly headers: Record<string, string>;
  constructor(url: string, opts: TargetOptions) {
    this.url = redactUrl(url);
    const { url: clean, credentials } = splitCredentials(url);
    let host: string;
    try {
      host = new URL(clean).hostname;
    } catch {
      throw badHttpCacheUrl(this.url);
    }
    this.base = clean.replace(/\/+$/, '');
    this.headers = parseHeaders(opts.headers);
    if (!this.headers.authorization) {
      const cred = credentials ?? netrcCredentials(host, opts.netrc);
      if (cred) this.headers.authorization = `Basic ${Buffer.from(`${cred.login}:${cred.password}`).toString('base64')}`;
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
    return (await this.stat(key)) !== undefined;
  }
  async stat(key: string) {
    const r = await this.send('HEAD', key);
    r.drop();
    if (r.status >= 200 && r.status < 300) return { size: contentLength(r) };
    if (r.status === 404 || r.status === 403 || r.status === 410) return undefined;
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

/** A --header that is not `Name: value`; named by its position, as its value may be a credential. */
export function badHeader(position: number): RelonixError {
  return new RelonixError(`--header number ${position} is not of the form "Name: value"`, { kind: 'usage', hint: "write it as --header 'Name: value'" });
}

/** An http(s) cache URL that does not parse. */
export function badHttpCacheUrl(url: string): RelonixError {
  return new RelonixError(`${url} is not a valid URL`, { kind: 'usage', hint: 'write it as http(s)://host[:port]/path' });
}
