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
      for (const k of Object.keys(headers)) if (k.toLowerCase() === 'authorization') delete headers[k];
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
  if (!secure && u.protocol !== 'http:') return Promise.reject(new Error(`${url} is not an http(s) URL`));
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
 * The error for an answer that is not what was asked: transient for the statuses worth retrying,
 * else a network error saying what to check.
 */
export async function httpFailure(r: HttpResponse, what: string, hint?: string): Promise<Error> {
  const body = (await r.text(200)).replace(/\s+/g, ' ').trim();
  const msg = `${what}: HTTP ${r.status}${body ? ` ${body.slice(0, 200)}` : ''}`;
  if (retryableStatus(r.status)) return new TransientError(msg);
  return new RelonixError(msg, {
    kind: 'network',
    hint:
      hint ??
      (r.status === 401 || r.status === 403
        ? 'check the credentials (netrc, --header, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)'
        : 'check the URL and that the server accepts this method'),
  });
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
