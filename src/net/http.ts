// src/net/: one HTTP layer (this client), downloads that resume and check their sha256, S3 signing,
// and the loopback file server of the demo.
//
// The one HTTP client: node:http(s), for downloads, cache objects and S3 alike. Not fetch: fetch
// keeps a streamed request body in memory (nodejs/undici#4058), which is what streaming a NAR from
// its file is meant to avoid, and undici's start-up costs more than a request to a loopback mirror.
// A connection that fails, stalls or breaks is a TransientError; a status is the caller's to judge
// (httpFailure says how, by the one rule in util/retry.ts).

import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { RelonixError } from '../util/errors.ts';
import { redactText } from '../util/redact.ts';
import { retryableStatus, TransientError } from '../util/retry.ts';

// Keep-alive saves a handshake per narinfo. Node unrefs the idle sockets an agent keeps, so they
// never hold the process open once its work is done.
const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/** A request body: bytes in memory, or a file streamed from disk (read afresh by every request). */
export type Body = Buffer | { file: string; size: number };

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Body;
  /** a connection silent for this long is given up (default 120 s) */
  idleMs?: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  headers: http.IncomingHttpHeaders;
  /** the body as it arrives; read it, or drop() it, so the connection can be reused */
  stream: http.IncomingMessage;
  /** the whole body; a connection that breaks meanwhile is a TransientError */
  buffer(): Promise<Buffer>;
  /** the start of the body, for messages */
  text(max?: number): Promise<string>;
  /** discard the body */
  drop(): void;
}

function describe(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const msg = err?.message || String(e);
  return err?.code && !msg.includes(err.code) ? `${msg} (${err.code})` : msg;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** What a redirect to another origin must not carry along (as browsers and fetch drop them). */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/**
 * Sends a request, following redirects as browsers do: at most ten, a PUT or DELETE only on 307
 * and 308, credentials only to the same origin. Resolves once the status and headers are in.
 */
export async function request(url: string, o: RequestOptions = {}): Promise<HttpResponse> {
  let at = url;
  let opts = o;
  for (let hops = 0; ; hops++) {
    const r = await requestOnce(at, opts);
    const location = r.headers.location;
    if (!REDIRECTS.has(r.status) || !location || hops >= 10) return r;
    r.drop();
    const next = new URL(location, at);
    const method = opts.method ?? 'GET';
    const keepMethod = r.status === 307 || r.status === 308 || method === 'GET' || method === 'HEAD';
    if (!keepMethod) return r; // a PUT or DELETE sent elsewhere is not for relonix to repeat as a GET
    const headers = { ...opts.headers };
    if (next.origin !== new URL(at).origin) {
      for (const k of Object.keys(headers)) if (CREDENTIAL_HEADERS.has(k.toLowerCase())) delete headers[k];
    }
    opts = { ...opts, headers };
    at = next.toString();
  }
}

function requestOnce(url: string, o: RequestOptions): Promise<HttpResponse> {
  const u = new URL(url);
  const method = o.method ?? 'GET';
  const what = `${method} ${url}`;
  const secure = u.protocol === 'https:';
  if (!secure && u.protocol !== 'http:') return Promise.reject(notHttpUrl(url));
  const headers: Record<string, string> = { ...o.headers };
  const body = o.body;
  if (body) headers['content-length'] ??= String(Buffer.isBuffer(body) ? body.length : body.size);
  const idleMs = o.idleMs ?? 120_000;
  return new Promise<HttpResponse>((resolve, reject) => {
    let answered = false;
    let fileError: unknown;
    const fail = (e: unknown) => {
      if (answered) return;
      answered = true;
      // the connection's failures are worth another try; the body's file and an abort are not
      if (o.signal?.aborted) reject(o.signal.reason);
      else if (fileError !== undefined || e instanceof TransientError) reject(fileError ?? e);
      else reject(new TransientError(`${what}: ${describe(e)}`));
    };
    const req = (secure ? https : http).request(u, { method, headers, agent: secure ? agents.https : agents.http, signal: o.signal }, (res) => {
      answered = true;
      resolve(wrap(res, what));
    });
    req.setTimeout(idleMs, () => req.destroy(new TransientError(`${what}: no answer for ${Math.round(idleMs / 1000)} s`)));
    req.on('error', fail);
    if (!body) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      const file = createReadStream(body.file, { highWaterMark: 1 << 20 });
      file.on('error', (e) => {
        fileError = e;
        req.destroy(e);
      });
      file.pipe(req);
    }
  });
}

function wrap(res: http.IncomingMessage, what: string): HttpResponse {
  const buffer = async (max = Infinity): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    let kept = 0;
    try {
      for await (const c of res) {
        if (kept >= max) continue;
        chunks.push(c as Buffer);
        kept += (c as Buffer).length;
      }
    } catch (e) {
      throw new TransientError(`${what}: the answer broke off (${describe(e)})`);
    }
    if (!res.complete) throw new TransientError(`${what}: the answer broke off`);
    return Buffer.concat(chunks);
  };
  return {
    status: res.statusCode ?? 0,
    statusText: res.statusMessage ?? '',
    headers: res.headers,
    stream: res,
    buffer: () => buffer(),
    text: async (max = 1 << 16) => (await buffer(max).catch(() => Buffer.alloc(0))).subarray(0, max).toString('utf8'),
    drop: () => {
      if (res.readableEnded || res.destroyed) return;
      // a short answer is read to its end, so its connection goes back to the pool (an answer never
      // read would hold it, and the process, open); a long one is cut
      const short = res.complete || Number(res.headers['content-length'] ?? Infinity) <= 1 << 16;
      if (short) res.resume();
      else res.destroy();
    },
  };
}

/**
 * What an error page says, in one short line: an S3 (XML) error's Code and Message, an HTML page's
 * title, or the start of a plain text; never markup, never more than 200 characters.
 */
export function errorBodySummary(body: string, contentType = ''): string {
  const xml = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(body)?.[1]?.trim();
  const s3 = [xml('Code'), xml('Message')].filter(Boolean).join(': ');
  if (s3) return oneLine(s3);
  if (/html|xml/i.test(contentType) || /^\s*</.test(body)) {
    return oneLine(/<title[^>]*>([^<]*)</i.exec(body)?.[1] ?? /<h1[^>]*>([^<]*)</i.exec(body)?.[1] ?? '');
  }
  return oneLine(body);
}

function oneLine(s: string): string {
  // whitespace and control characters (a terminal escape in an error page) become one space
  const printable = [...s].map((c) => (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? ' ' : c)).join('');
  return redactText(printable.replace(/\s+/g, ' ').trim()).slice(0, 200);
}

/** `what: HTTP 403 Forbidden (AccessDenied: …)`: the request, the status and what the server said. */
function statusLine(r: HttpResponse, what: string, detail: string): string {
  const status = `HTTP ${r.status}${r.statusText ? ` ${r.statusText}` : ''}`;
  const extra = detail && !status.toLowerCase().includes(detail.toLowerCase()) && !detail.includes(String(r.status)) ? ` (${detail})` : '';
  return `${redactText(what)}: ${status}${extra}`;
}

/** The server refused the credentials it was sent, or wants some it was not sent (401, 403). */
export function credentialsRefused(
  line: string,
  hint = 'check the credentials: user:password in the URL or a netrc entry for the host, --header, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://',
): RelonixError {
  return new RelonixError(`${line}: the server refused access with the credentials given (or without any)`, { kind: 'usage', hint });
}

/** The server does not take this method: an origin that serves files but takes no uploads (405, 501). */
export function uploadsRefused(
  line: string,
  hint = 'point at an origin that accepts PUT and DELETE (a WebDAV server, nginx with dav_methods PUT DELETE) or at an s3:// bucket',
): RelonixError {
  return new RelonixError(`${line}: the server does not take this request; an origin that only serves files takes no uploads`, { kind: 'usage', hint });
}

/** The object asked for does not exist (404, 410). */
export function missingObject(line: string, hint = 'check the URL'): RelonixError {
  return new RelonixError(`${line}: no such object on the server`, { kind: 'failure', hint });
}

/**
 * The error for an answer that is not what was asked, by the one rule for every caller: transient
 * for the statuses worth retrying (util/retry.ts), else refused credentials, refused uploads, a
 * missing object, or a request the server would not take. `hint` replaces the default fix.
 */
export async function httpFailure(r: HttpResponse, what: string, hint?: string): Promise<Error> {
  const line = statusLine(r, what, errorBodySummary(await r.text(4096), String(r.headers['content-type'] ?? '')));
  if (retryableStatus(r.status)) return new TransientError(line);
  if (r.status === 401 || r.status === 403) return credentialsRefused(line, hint);
  if (r.status === 405 || r.status === 501) return uploadsRefused(line, hint);
  if (r.status === 404 || r.status === 410) return missingObject(line, hint);
  return requestRefused(line, hint);
}

/** Any other refusal (400, 409, 413 …): the server will not take this request as it is. */
export function requestRefused(line: string, hint = 'check the URL and that the server accepts this request'): RelonixError {
  return new RelonixError(`${line}: the server would not take the request`, { kind: 'failure', hint });
}

/** A URL relonix was to fetch over HTTP whose scheme is not http or https. */
export function notHttpUrl(url: string): RelonixError {
  return new RelonixError(`${url} is not an http(s) URL`, {
    kind: 'usage',
    hint: 'write a server as http(s)://host/path, a local file as its path or file:///path',
  });
}

/** The Content-Length an answer announced, or undefined. */
export function contentLength(r: HttpResponse): number | undefined {
  const v = r.headers['content-length'];
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** A body read as it arrives, with a break in the connection made a TransientError. */
export async function* transientBody(r: HttpResponse, what: string): AsyncGenerator<Buffer> {
  try {
    for await (const c of r.stream) yield c as Buffer;
  } catch (e) {
    throw new TransientError(`${what}: the answer broke off (${describe(e)})`);
  }
  if (!r.stream.complete) throw new TransientError(`${what}: the answer broke off`);
}
