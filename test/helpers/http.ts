// A loopback HTTP server for tests: serves files (from a directory or from memory) with Range and
// If-Range support, and injects the faults real mirrors and CDNs produce: error statuses, bodies cut
// short, servers that ignore Range. It counts what it served so tests can prove a download resumed.

import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';

export interface ServerOptions {
  /** serve the files under this directory */
  dir?: string;
  /** or these bodies, keyed by URL path ('/nix.tar.xz') */
  files?: Record<string, Buffer | string>;
  /** answer the first N requests with `failStatus` */
  failFirst?: number;
  failStatus?: number;
  /** cut the connection after this many body bytes … */
  cutAfter?: number;
  /** … on the first M responses that carry a body (default 1) */
  cutRequests?: number;
  /** answer 200 with the whole body even when a Range is asked for */
  ignoreRange?: boolean;
  /** send ETag and Last-Modified (default true) */
  validators?: boolean;
  /** send bodies in pieces of this many bytes, `throttleMs` apart (a slow link) */
  throttleBytes?: number;
  throttleMs?: number;
  /** runs first; return true when it answered the request itself */
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean>;
}

export interface RequestRecord {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  status: number;
  bytes: number;
}

export interface TestServer {
  url: string;
  port: number;
  /** everything the server did, in order */
  log: RequestRecord[];
  /** body bytes written over all requests */
  readonly bytesServed: number;
  readonly requests: number;
  close(): Promise<void>;
}

const LAST_MODIFIED = new Date(Date.UTC(2024, 0, 1)).toUTCString();

async function lookup(opts: ServerOptions, urlPath: string): Promise<Buffer | undefined> {
  if (opts.files && Object.hasOwn(opts.files, urlPath)) {
    const b = opts.files[urlPath]!;
    return typeof b === 'string' ? Buffer.from(b) : b;
  }
  if (opts.dir) {
    const root = path.resolve(opts.dir);
    const p = path.resolve(root, `.${urlPath}`);
    if (p !== root && !p.startsWith(root + path.sep)) return undefined;
    try {
      return await fs.readFile(p);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export async function startServer(opts: ServerOptions = {}): Promise<TestServer> {
  const log: RequestRecord[] = [];
  let bytesServed = 0;
  let requests = 0;
  let bodiesSent = 0;
  const validators = opts.validators ?? true;

  const server = http.createServer(async (req, res) => {
    const n = ++requests;
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const rec: RequestRecord = {
      method: req.method ?? 'GET',
      path: urlPath,
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      status: 0,
      bytes: 0,
    };
    log.push(rec);
    try {
      if (opts.handler && (await opts.handler(req, res))) {
        rec.status = res.statusCode;
        return;
      }
      if (n <= (opts.failFirst ?? 0)) {
        rec.status = opts.failStatus ?? 503;
        res.writeHead(rec.status, { 'content-type': 'text/plain', 'retry-after': '0' });
        res.end('injected failure\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        rec.status = 405;
        res.writeHead(405).end();
        return;
      }
      const body = await lookup(opts, urlPath);
      if (!body) {
        rec.status = 404;
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
      if (validators) {
        headers.etag = etag;
        headers['last-modified'] = LAST_MODIFIED;
      }
      let start = 0;
      let end = body.length - 1;
      let status = 200;
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      const ifRange = req.headers['if-range'];
      const validatorOk = !ifRange || (validators && (ifRange === etag || ifRange === LAST_MODIFIED));
      if (m && !opts.ignoreRange && validatorOk) {
        start = Number(m[1]);
        if (m[2]) end = Math.min(Number(m[2]), body.length - 1);
        if (start >= body.length) {
          rec.status = 416;
          res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
          return;
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
      }
      const slice = body.subarray(start, end + 1);
      headers['content-length'] = slice.length;
      rec.status = status;
      res.writeHead(status, headers);
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      bodiesSent++;
      const cut = opts.cutAfter !== undefined && bodiesSent <= (opts.cutRequests ?? 1) ? opts.cutAfter : undefined;
      if (cut !== undefined && cut < slice.length) {
        const part = slice.subarray(0, cut);
        rec.bytes = part.length;
        bytesServed += part.length;
        // send what we promised so far, then close the connection mid-body (FIN after the data,
        // so the client really received `cut` bytes)
        const sock = res.socket;
        res.write(part, () => {
          sock?.end();
          setTimeout(() => sock?.destroy(), 1000).unref();
        });
        return;
      }
      if (opts.throttleBytes) {
        for (let off = 0; off < slice.length && !res.destroyed; off += opts.throttleBytes) {
          const piece = slice.subarray(off, off + opts.throttleBytes);
          rec.bytes += piece.length;
          bytesServed += piece.length;
          res.write(piece);
          await new Promise((r) => setTimeout(r, opts.throttleMs ?? 10));
        }
        res.end();
        return;
      }
      rec.bytes = slice.length;
      bytesServed += slice.length;
      res.end(slice);
    } catch (e) {
      rec.status = 500;
      if (!res.headersSent) res.writeHead(500).end(String(e));
      else res.destroy();
    }
  });
  const { url, port, close } = await listenLoopback(server);
  return {
    url,
    port,
    log,
    get bytesServed() {
      return bytesServed;
    },
    get requests() {
      return requests;
    },
    close,
  };
}

/** A server started for `fn` alone, and stopped after it whatever happens. */
export async function withServer<T>(opts: ServerOptions, fn: (s: TestServer) => Promise<T>): Promise<T> {
  const s = await startServer(opts);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

export interface Listening {
  url: string;
  port: number;
  /** drops every connection, idle or not, and stops listening */
  close(): Promise<void>;
}

/** Puts a server a test wrote for itself (an origin with its own faults) on a free loopback port. */
export async function listenLoopback(server: http.Server | net.Server): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        if (server instanceof http.Server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A connection through a relay, and which side ended it first. */
export interface RelayedConnection {
  closedBy?: 'client' | 'origin';
}

export interface Relay extends Listening {
  connections: RelayedConnection[];
}

/**
 * A TCP relay on loopback to an origin's port that notes, for every connection, which side ended it
 * first: a client that lets its connections go once it is done ends each of them itself; one that
 * keeps idle connections open (and so a process that does not exit) waits for the origin to end them.
 */
export async function startRelay(originPort: number): Promise<Relay> {
  const connections: RelayedConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const c: RelayedConnection = {};
    connections.push(c);
    const origin = net.connect(originPort, '127.0.0.1');
    const ends = (s: net.Socket, side: 'client' | 'origin', other: net.Socket) => {
      sockets.add(s);
      s.on('error', () => {});
      s.on('end', () => (c.closedBy ??= side));
      // a reset (or a kill) ends a connection without an 'end'
      s.on('close', () => {
        c.closedBy ??= side;
        sockets.delete(s);
        other.destroy();
      });
    };
    ends(client, 'client', origin);
    ends(origin, 'origin', client);
    client.pipe(origin);
    origin.pipe(client);
  });
  const listening = await listenLoopback(server);
  return {
    ...listening,
    connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await listening.close();
    },
  };
}
