// AWS Signature Version 4 for the requests net/http.ts sends to S3 and S3-compatible stores.
// Written from the specification and checked against AWS's test vectors and botocore's signer
// (test/s3.test.ts). The payload hash is the caller's: a NAR streamed from its file is hashed once,
// when it is staged, not again to sign it.
import { createHash, createHmac } from 'node:crypto';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignInput extends Credentials {
  method: string;
  url: string;
  headers?: Record<string, string>;
  /** hex sha256 of the body (default: of an empty one) */
  payloadSha256?: string;
  service: string;
  region: string;
  /** `YYYYMMDDTHHMMSSZ`; default now */
  datetime?: string;
}

/** Headers a proxy or client may change on the way, which are therefore not signed. */
const UNSIGNED = new Set(['authorization', 'content-type', 'content-length', 'user-agent', 'expect', 'range', 'connection', 'x-amzn-trace-id']);

const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

/** RFC 3986 percent-encoding: everything but A-Z a-z 0-9 - . _ ~ (how SigV4 wants URIs) */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function canonicalPath(u: URL, service: string): string {
  // S3 signs each segment encoded once; the other services sign the path encoded a second time
  const segments = service === 's3' ? u.pathname.split('/').map(decode) : u.pathname.replace(/\/+/g, '/').split('/');
  return segments.map(uriEncode).join('/');
}

function canonicalQuery(u: URL, service: string): string {
  const seen = new Set<string>();
  return [...u.searchParams]
    .filter(([k]) => k !== '' && !(service === 's3' && seen.has(k)) && seen.add(k))
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([k1, v1], [k2, v2]) => (k1 < k2 ? -1 : k1 > k2 ? 1 : v1 < v2 ? -1 : v1 > v2 ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();

/** The request's headers with x-amz-date, the payload hash (S3), the session token and Authorization added. */
export function signV4(s: SignInput): Record<string, string> {
  const u = new URL(s.url);
  const datetime = s.datetime ?? new Date().toISOString().replace(/[:-]|\.\d{3}/g, '');
  const date = datetime.slice(0, 8);
  const payload = s.payloadSha256 ?? EMPTY_SHA256;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.headers ?? {})) headers[k.toLowerCase()] = v;
  delete headers.host;
  if (s.service === 's3') headers['x-amz-content-sha256'] ??= payload;
  headers['x-amz-date'] = datetime;
  if (s.sessionToken) headers['x-amz-security-token'] = s.sessionToken;
  const signed = ['host', ...Object.keys(headers).filter((k) => !UNSIGNED.has(k))].sort();
  const value = (k: string) => (k === 'host' ? u.host : headers[k]!.trim().replace(/\s+/g, ' '));
  const canonical = [
    s.method.toUpperCase(),
    canonicalPath(u, s.service),
    canonicalQuery(u, s.service),
    signed.map((k) => `${k}:${value(k)}\n`).join(''),
    signed.join(';'),
    headers['x-amz-content-sha256'] ?? payload,
  ].join('\n');
  const scope = `${date}/${s.region}/${s.service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', datetime, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${s.secretAccessKey}`, date), s.region), s.service), 'aws4_request');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${s.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${hmac(key, toSign).toString('hex')}`;
  return headers;
}
