// A cache in an S3 bucket (or an S3-compatible store: MinIO, R2, Ceph), path-style requests against
// an endpoint, signed with SigV4 over the real payload hash, so the store can check what it got.
import { createHash } from 'node:crypto';
import { type Body, contentLength, type HttpResponse, httpFailure, request, transientBody } from '../net/http.ts';
import { type Credentials, signV4, uriEncode } from '../net/sigv4.ts';
import { RelonixError } from '../util/errors.ts';
import { redactUrl } from '../util/redact.ts';
import type { CacheObject, CacheTarget } from './target.ts';

/** `s3://bucket?endpoint=http://host:port&region=us-east-1` (path-style requests against the endpoint). */
export function parseS3Url(url: string): { bucket: string; endpoint: string; region: string; prefix: string } {
  const u = new URL(url);
  const bucket = u.hostname;
  if (!bucket) throw noBucket(url);
  const region = u.searchParams.get('region') ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  let endpoint = u.searchParams.get('endpoint') ?? `https://s3.${region}.amazonaws.com`;
  if (!/^https?:\/\//.test(endpoint)) endpoint = `https://${endpoint}`;
  return { bucket, endpoint: endpoint.replace(/\/+$/, ''), region, prefix: u.pathname.replace(/^\/+|\/+$/g, '') };
}

const ok = (r: HttpResponse) => r.status >= 200 && r.status < 300;

function unxml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

export class S3Target implements CacheTarget {
  private readonly creds: Credentials;
  private readonly s3: ReturnType<typeof parseS3Url>;
  /** the URL for messages: credentials in it masked */
  readonly url: string;
  constructor(url: string) {
    this.url = redactUrl(url);
    this.s3 = parseS3Url(url);
    const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw noS3Credentials(this.url);
    }
    this.creds = { accessKeyId, secretAccessKey, sessionToken: process.env.AWS_SESSION_TOKEN };
  }
  private u(key: string) {
    const objectKey = this.s3.prefix ? `${this.s3.prefix}/${key}` : key;
    return `${this.s3.endpoint}/${this.s3.bucket}/${objectKey.split('/').map(uriEncode).join('/')}`;
  }
  /** `sha256hex` is the body's hash; a body in memory is hashed here */
  private send(method: string, url: string, body?: Body, headers: Record<string, string> = {}, sha256hex?: string): Promise<HttpResponse> {
    const payloadSha256 =
      sha256hex ??
      createHash('sha256')
        .update(Buffer.isBuffer(body) ? body : Buffer.alloc(0))
        .digest('hex');
    const signed = signV4({ ...this.creds, method, url, headers, payloadSha256, service: 's3', region: this.s3.region });
    return request(url, { method, headers: signed, body });
  }
  async has(key: string) {
    return (await this.stat(key)) !== undefined;
  }
  async stat(key: string) {
    const r = await this.send('HEAD', this.u(key));
    r.drop();
    if (ok(r)) return { size: contentLength(r) };
    // S3 answers 403 for a missing key to a caller without s3:ListBucket
    if (r.status === 404 || r.status === 403) return undefined;
    throw await httpFailure(r, `HEAD ${this.u(key)}`);
  }
  /** the answer to a GET of an object, or undefined when there is none */
  private async fetch(key: string): Promise<HttpResponse | undefined> {
    const r = await this.send('GET', this.u(key));
    if (r.status === 404) {
      r.drop();
      return undefined;
    }
    if (!ok(r)) throw await httpFailure(r, `GET ${this.u(key)}`);
    return r;
  }
  async get(key: string) {
    return (await this.fetch(key))?.buffer();
  }
  async openRead(key: string) {
    const r = await this.fetch(key);
    return r && transientBody(r, `GET ${this.u(key)}`);
  }
  async put(key: string, data: Buffer, contentType: string) {
    await this.write(key, data, contentType);
  }
  async putFile(key: string, file: string, size: number, sha256hex: string, contentType: string) {
    // signed with the payload hash known from staging, so the file streams up without being read twice
    await this.write(key, { file, size }, contentType, sha256hex);
  }
  private async write(key: string, body: Body, contentType: string, sha256hex?: string) {
    const r = await this.send('PUT', this.u(key), body, { 'content-type': contentType }, sha256hex);
    if (!ok(r)) throw await httpFailure(r, `PUT ${this.u(key)}`);
    r.drop();
  }
  async delete(key: string) {
    const r = await this.send('DELETE', this.u(key));
    if (!ok(r) && r.status !== 404) throw await httpFailure(r, `DELETE ${this.u(key)}`);
    r.drop();
  }
  async list(): Promise<CacheObject[]> {
    const objects: CacheObject[] = [];
    let token: string | undefined;
    const pre = this.s3.prefix ? `${this.s3.prefix}/` : '';
    do {
      const q = new URLSearchParams({ 'list-type': '2' });
      if (pre) q.set('prefix', pre);
      if (token) q.set('continuation-token', token);
      const url = `${this.s3.endpoint}/${this.s3.bucket}?${q.toString()}`;
      const r = await this.send('GET', url);
      if (!ok(r)) throw await httpFailure(r, `GET ${url}`);
      const xml = (await r.buffer()).toString('utf8');
      objects.push(...listedObjects(xml, pre));
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? unxml(/<NextContinuationToken>([^<]*)</.exec(xml)?.[1] ?? '') : undefined;
    } while (token);
    return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

/** Pure: the objects of a ListObjectsV2 answer, keys without the cache's prefix; LastModified when given. */
export function listedObjects(xml: string, pre: string): CacheObject[] {
  const out: CacheObject[] = [];
  for (const [, body] of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
    const field = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(body!)?.[1];
    const key = field('Key');
    if (key === undefined) continue;
    const modified = field('LastModified') ? new Date(field('LastModified')!) : undefined;
    out.push({
      key: unxml(key).slice(pre.length),
      size: Number(field('Size') ?? 0),
      modified: modified && !Number.isNaN(modified.getTime()) ? modified : undefined,
    });
  }
  return out;
}

/** An s3:// URL without a bucket name. */
export function noBucket(url: string): RelonixError {
  return new RelonixError(`${redactUrl(url)} names no bucket`, { kind: 'usage', hint: 'write s3://BUCKET?endpoint=…&region=…' });
}

/** An s3:// cache with no AWS credentials in the environment. */
export function noS3Credentials(url: string): RelonixError {
  return new RelonixError(`no credentials for ${url}`, {
    kind: 'usage',
    hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)',
  });
}
