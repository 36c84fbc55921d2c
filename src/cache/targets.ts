// Where a binary cache lives: a directory (file://), an HTTP origin that takes PUT (WebDAV, as
// Nix's own http store writes) or an S3 bucket (SigV4, path-style against an endpoint). One small
// interface so publish, restore and gc never care which.
import { createHash } from 'node:crypto';
import { createReadStream, constants as FC, promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AwsClient, AwsV4Signer } from 'aws4fetch';
import { RelonixError } from '../util/errors.ts';
import { tempSibling, writeFileAtomic } from '../util/fs.ts';

export interface CacheTarget {
  /** the URL as given, for messages */
  readonly url: string;
  has(key: string): Promise<boolean>;
  /** the object, or undefined when it does not exist */
  get(key: string): Promise<Buffer | undefined>;
  /** a small object (narinfo, nix-cache-info, relonix.json) */
  put(key: string, data: Buffer, contentType: string): Promise<void>;
  /**
   * an object streamed from a local file of `size` bytes whose sha256 is `sha256hex` (NARs): nothing
   * of its size is held in memory. Each call reads the file afresh, so a retry is just another call.
   */
  putFile(key: string, file: string, size: number, sha256hex: string, contentType: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** every key in the cache; targets that cannot list leave it out */
  list?(): Promise<string[]>;
  /** the object as a stream, or undefined when it does not exist: NARs never have to fit in memory */
  openRead?(key: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  /** for http(s) targets: the URL of a key and the headers to fetch it with (resumable downloads) */
  httpSource?(key: string): { url: string; headers: Record<string, string> };
}

/** A failure worth retrying: the server or the connection, not the request. */
export class TransientError extends Error {}

export interface TargetOptions {
  /** extra request headers, `Name: value` */
  headers?: string[];
  /** netrc file; default $NETRC, else ~/.netrc */
  netrc?: string;
}

export function openTarget(url: string, opts: TargetOptions = {}): CacheTarget {
  if (url.startsWith('file://')) return new FileTarget(url);
  if (url.startsWith('http://') || url.startsWith('https://')) return new HttpTarget(url, opts);
  if (url.startsWith('s3://')) return new S3Target(url);
  if (url.startsWith('/')) return new FileTarget(`file://${url}`);
  throw new RelonixError(`unsupported cache URL ${url}`, { kind: 'usage', hint: 'use file:///dir, http(s)://host/path or s3://bucket?endpoint=…&region=…' });
}

class FileTarget implements CacheTarget {
  readonly root: string;
  constructor(readonly url: string) {
    this.root = fileURLToPath(url.split('?')[0]!);
  }
  private p(key: string): string {
    const p = path.resolve(this.root, key);
    if (!p.startsWith(this.root + path.sep)) throw new Error(`cache key ${key} leaves the cache directory`);
    return p;
  }
  async has(key: string) {
    try {
      await fs.access(this.p(key));
      return true;
    } catch {
      return false;
    }
  }
  async get(key: string) {
    try {
      return await fs.readFile(this.p(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  async openRead(key: string) {
    const p = this.p(key);
    try {
      // opened here, so a missing object is an answer rather than a stream error later
      const fh = await fs.open(p, 'r');
      return fh.createReadStream({ highWaterMark: 1 << 20 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  async put(key: string, data: Buffer) {
    // temp + rename: a reader (or a kill) never sees half an object
    await writeFileAtomic(this.p(key), data);
  }
  async putFile(key: string, file: string, size: number) {
    const dest = this.p(key);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    // copied under a dot name beside its place, then renamed: a reader (or a kill) never sees half a NAR
    const tmp = tempSibling(dest);
    try {
      await fs.copyFile(file, tmp, FC.COPYFILE_EXCL);
      const fh = await fs.open(tmp, 'r+');
      try {
        const st = await fh.stat();
        if (st.size !== size) throw new Error(`${file} is ${st.size} bytes, not the ${size} it was staged with`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.chmod(tmp, 0o644);
      await fs.rename(tmp, dest);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }
  async delete(key: string) {
    await fs.rm(this.p(key), { force: true });
  }
  async list() {
    const out: string[] = [];
    const walk = async (dir: string, rel: string) => {
      let names: string[];
      try {
        names = await fs.readdir(dir);
      } catch {
        return;
      }
      for (const n of names) {
        if (n.startsWith('.')) continue;
        const st = await fs.stat(path.join(dir, n));
        if (st.isDirectory()) await walk(path.join(dir, n), `${rel}${n}/`);
        else out.push(rel + n);
      }
    };
    await walk(this.root, '');
    return out.sort();
  }
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
    if (t === 'machine') entries.push((cur = { machine: toks[++i] }));
    else if (t === 'default') entries.push((cur = { machine: undefined }));
    else if (t === 'login' && cur) cur.login = toks[++i];
    else if (t === 'password' && cur) cur.password = toks[++i];
  }
  const e = entries.find((x) => x?.machine === host) ?? entries.find((x) => x && x.machine === undefined);
  return e?.login !== undefined && e.password !== undefined ? { login: e.login, password: e.password } : undefined;
}

function retryable(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** Time allowed for one request: two minutes, plus one second for every 256 KiB uploaded. */
function requestTimeout(uploadBytes = 0): number {
  return 120_000 + Math.ceil(uploadBytes / (256 * 1024)) * 1000;
}

/**
 * PUTs a file, read afresh for every request, with node:http(s) rather than fetch: fetch keeps a
 * streamed request body in memory (nodejs/undici#4058), which is what streaming is meant to avoid.
 * The answer comes back as a Response, so failures are read the same way as fetch's.
 */
function putFileRequest(url: string, headers: Record<string, string>, file: string, timeoutMs: number): Promise<Response> {
  const u = new URL(url);
  const client = u.protocol === 'https:' ? https : http;
  return new Promise<Response>((resolve, reject) => {
    const body = createReadStream(file, { highWaterMark: 1 << 20 });
    let settled = false;
    const finish = (e: Error | undefined, r?: Response) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      body.destroy();
      if (e) reject(new TransientError(`PUT ${url}: ${e.message}`));
      else resolve(r!);
    };
    const req = client.request(u, { method: 'PUT', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (c: Buffer) => {
        // an answer to a PUT is small; keep the start of it for messages
        if (kept < 1 << 16) chunks.push(c);
        kept += c.length;
      });
      res.on('error', (e) => finish(e));
      res.on('end', () => {
        const status = res.statusCode ?? 502;
        const nullBody = status === 204 || status === 205 || status === 304;
        finish(undefined, new Response(nullBody ? null : (Buffer.concat(chunks) as unknown as BodyInit), { status: status < 200 ? 502 : status }));
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    req.on('error', (e) => finish(e));
    body.on('error', (e) => req.destroy(e));
    body.pipe(req);
  });
}

async function send(url: string, init: RequestInit & { headers: Record<string, string> }, timeoutMs = requestTimeout()): Promise<Response> {
  let r: Response;
  try {
    r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new TransientError(`${init.method ?? 'GET'} ${url}: ${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause?: Error }).cause!.message})` : ''}`);
  }
  return r;
}

async function fail(r: Response, method: string, url: string): Promise<never> {
  const body = (await r.text().catch(() => '')).slice(0, 200);
  const msg = `${method} ${url}: HTTP ${r.status}${body ? ` ${body.replace(/\s+/g, ' ')}` : ''}`;
  if (retryable(r.status)) throw new TransientError(msg);
  throw new RelonixError(msg, {
    kind: 'network',
    hint: r.status === 401 || r.status === 403 ? 'check the credentials (netrc, --header, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)' : 'check the cache URL and that the server accepts this method',
  });
}

class HttpTarget implements CacheTarget {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  constructor(readonly url: string, opts: TargetOptions) {
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
  httpSource(key: string) {
    return { url: this.u(key), headers: { ...this.headers } };
  }
  async has(key: string) {
    const r = await send(this.u(key), { method: 'HEAD', headers: this.headers });
    if (r.ok) return true;
    if (r.status === 404 || r.status === 403 || r.status === 410) return false;
    return fail(r, 'HEAD', this.u(key));
  }
  async get(key: string) {
    const r = await send(this.u(key), { method: 'GET', headers: this.headers });
    if (r.status === 404 || r.status === 410) return undefined;
    if (!r.ok) return fail(r, 'GET', this.u(key));
    try {
      return Buffer.from(await r.arrayBuffer());
    } catch (e) {
      throw new TransientError(`GET ${this.u(key)}: ${(e as Error).message}`);
    }
  }
  async put(key: string, data: Buffer, contentType: string) {
    const r = await send(this.u(key), { method: 'PUT', body: data as unknown as BodyInit, headers: { ...this.headers, 'content-type': contentType } });
    if (!r.ok) return fail(r, 'PUT', this.u(key));
    await r.arrayBuffer().catch(() => undefined);
  }
  async putFile(key: string, file: string, size: number, _sha256hex: string, contentType: string) {
    const r = await putFileRequest(this.u(key), { ...this.headers, 'content-type': contentType, 'content-length': String(size) }, file, requestTimeout(size));
    if (!r.ok) return fail(r, 'PUT', this.u(key));
  }
  async delete(key: string) {
    const r = await send(this.u(key), { method: 'DELETE', headers: this.headers });
    if (!r.ok && r.status !== 404) return fail(r, 'DELETE', this.u(key));
  }
}

/** `s3://bucket?endpoint=http://host:port&region=us-east-1` (path-style requests against the endpoint). */
export function parseS3Url(url: string): { bucket: string; endpoint: string; region: string; prefix: string } {
  const u = new URL(url);
  const bucket = u.hostname;
  if (!bucket) throw new RelonixError(`${url} names no bucket`, { kind: 'usage', hint: 'write s3://BUCKET?endpoint=…&region=…' });
  const region = u.searchParams.get('region') ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  let endpoint = u.searchParams.get('endpoint') ?? `https://s3.${region}.amazonaws.com`;
  if (!/^https?:\/\//.test(endpoint)) endpoint = `https://${endpoint}`;
  return { bucket, endpoint: endpoint.replace(/\/+$/, ''), region, prefix: u.pathname.replace(/^\/+|\/+$/g, '') };
}

class S3Target implements CacheTarget {
  private readonly client: AwsClient;
  private readonly creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  private readonly s3: ReturnType<typeof parseS3Url>;
  constructor(readonly url: string) {
    this.s3 = parseS3Url(url);
    const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new RelonixError(`no credentials for ${url}`, { kind: 'usage', hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)' });
    }
    this.creds = { accessKeyId, secretAccessKey, sessionToken: process.env.AWS_SESSION_TOKEN };
    this.client = new AwsClient({ ...this.creds, service: 's3', region: this.s3.region, retries: 0 });
  }
  private objectKey(key: string) {
    return this.s3.prefix ? `${this.s3.prefix}/${key}` : key;
  }
  private u(key: string) {
    return `${this.s3.endpoint}/${this.s3.bucket}/${this.objectKey(key).split('/').map(encodeURIComponent).join('/')}`;
  }
  private async req(method: string, url: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Response> {
    // sign the real payload hash, so the store can check what it received
    const h = { ...headers, 'x-amz-content-sha256': createHash('sha256').update(body ?? Buffer.alloc(0)).digest('hex') };
    try {
      return await this.client.fetch(url, { method, body: body as unknown as BodyInit | undefined, headers: h, signal: AbortSignal.timeout(requestTimeout()) });
    } catch (e) {
      throw new TransientError(`${method} ${url}: ${(e as Error).message}`);
    }
  }
  async has(key: string) {
    const r = await this.req('HEAD', this.u(key));
    if (r.ok) return true;
    if (r.status === 404 || r.status === 403) return false;
    return fail(r, 'HEAD', this.u(key));
  }
  async get(key: string) {
    const r = await this.req('GET', this.u(key));
    if (r.status === 404) return undefined;
    if (!r.ok) return fail(r, 'GET', this.u(key));
    try {
      return Buffer.from(await r.arrayBuffer());
    } catch (e) {
      throw new TransientError(`GET ${this.u(key)}: ${(e as Error).message}`);
    }
  }
  async openRead(key: string) {
    const r = await this.req('GET', this.u(key));
    if (r.status === 404) return undefined;
    if (!r.ok || !r.body) return fail(r, 'GET', this.u(key));
    return transientBody(r.body as AsyncIterable<Uint8Array>, `GET ${this.u(key)}`);
  }
  async put(key: string, data: Buffer, contentType: string) {
    const r = await this.req('PUT', this.u(key), data, { 'content-type': contentType });
    if (!r.ok) return fail(r, 'PUT', this.u(key));
    await r.arrayBuffer().catch(() => undefined);
  }
  async putFile(key: string, file: string, size: number, sha256hex: string, contentType: string) {
    // signed with the payload hash known from staging, so the file streams up without being read twice
    const url = this.u(key);
    const signer = new AwsV4Signer({ ...this.creds, method: 'PUT', url, headers: { 'content-type': contentType, 'x-amz-content-sha256': sha256hex }, service: 's3', region: this.s3.region });
    const signed = await signer.sign();
    const headers: Record<string, string> = Object.fromEntries(signed.headers.entries());
    headers['content-length'] = String(size);
    const r = await putFileRequest(url, headers, file, requestTimeout(size));
    if (!r.ok) return fail(r, 'PUT', url);
  }
  async delete(key: string) {
    const r = await this.req('DELETE', this.u(key));
    if (!r.ok && r.status !== 404) return fail(r, 'DELETE', this.u(key));
  }
  async list() {
    const keys: string[] = [];
    let token: string | undefined;
    const pre = this.s3.prefix ? `${this.s3.prefix}/` : '';
    do {
      const q = new URLSearchParams({ 'list-type': '2' });
      if (pre) q.set('prefix', pre);
      if (token) q.set('continuation-token', token);
      const url = `${this.s3.endpoint}/${this.s3.bucket}?${q.toString()}`;
      const r = await this.req('GET', url);
      if (!r.ok) return fail(r, 'GET', url);
      const xml = await r.text();
      for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(unxml(m[1]!).slice(pre.length));
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? unxml(/<NextContinuationToken>([^<]*)</.exec(xml)?.[1] ?? '') : undefined;
    } while (token);
    return keys.sort();
  }
}

/** A body cut short by the network is worth another try, like a failed request. */
async function* transientBody(body: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Uint8Array> {
  try {
    yield* body;
  } catch (e) {
    throw new TransientError(`${what}: ${(e as Error).message}`);
  }
}

function unxml(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}
