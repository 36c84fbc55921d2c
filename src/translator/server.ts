// The translator's HTTP server: a binary cache for the prefix's store dir at
// http://127.0.0.1:PORT/ID/, on loopback only. It runs while some command holds a lease (a file
// named by its pid in leases/) and stops once none has for `idleMs`. Stopping and starting go
// under one lock with the server file, so a command that finds the server file never finds a
// server about to leave: the stopping server looks at the leases once more inside the lock.
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { formatCacheInfo } from '../cache/meta.ts';
import { activeNix } from '../prefix/environment.ts';
import type { Layout } from '../prefix/layout.ts';
import { errorMessage } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { readProcStat } from '../util/proc.ts';
import { readTranslatorConfig, readTranslatorKey, type TranslatorConfig, type TranslatorFiles, translatorFiles } from './config.ts';
import { answerHello, HELLO_PATH, whoListens } from './hello.ts';
import { KEPT_NAR } from './keep.ts';
import { leaseHolders, Notes } from './notes.ts';
import { Translator } from './resolve.ts';

/** The one line the server prints when it is listening (or why it is not). */
export type Ready = { port: number; pid: number; already?: boolean } | { error: string; fix: string };

/** Lower than the caches one publishes (40): Nix asks those first, and the translator only for the rest. */
const PRIORITY = 60;

const NARINFO = /^([0-9abcdfghijklmnpqrsvwxyz]{32})\.narinfo$/;
const NAR = new RegExp(`^${KEPT_NAR}$`);

/**
 * How much bytecode a function runs before V8 considers optimizing it: its default (132 KiB), four
 * times; and optimized code calls what it calls rather than compiling it inline. Each of the
 * translator's isolates compiles its own hot code, on the two cores the translations need, and a
 * burst is short: with the defaults, compiling cost more than it saved. bench:substitute's first
 * install, the budget: three alternating pairs, the translator's CPU 3.15-3.69 s → 2.51-3.12 s (one
 * isolate's first rewrite of 42 MB of NARs, 527 → 374 ms); no inlining on top, seven pairs: faster
 * in each, 0.07-0.39 s (the rewrite of those NARs once warm, three runs each: median 240-250 ms →
 * 229-243 ms, so a long translation does not pay for it).
 */
const INTERRUPT_BUDGET = 4 * 132 * 1024;

/** How long the lease of a command that has ended stays, for its relay to copy the last messages and remove it. */
const LEASE_GRACE_MS = 10_000;

class Activity {
  busy = 0;
  last = Date.now();
  private readonly starts = new Map<number, string>();
  private readonly ended = new Map<number, number>();

  /** How many commands hold a lease; the leases of commands that ended a while ago go. */
  async sweep(f: TranslatorFiles): Promise<number> {
    let live = 0;
    for (const pid of await leaseHolders(f)) {
      const st = readProcStat(pid);
      const seen = this.starts.get(pid);
      if (st && st.state !== 'Z' && st.state !== 'X' && (seen === undefined || seen === st.startTime)) {
        this.starts.set(pid, st.startTime);
        live++;
        continue;
      }
      this.starts.delete(pid);
      const since = this.ended.get(pid) ?? Date.now();
      this.ended.set(pid, since);
      if (Date.now() - since < LEASE_GRACE_MS) continue;
      this.ended.delete(pid);
      await fs.rm(path.join(f.leases, String(pid)), { force: true });
    }
    if (live || this.busy) this.last = Date.now();
    return live;
  }
}

function handler(l: Layout, c: TranslatorConfig, t: Translator, hello: (nonce: string) => unknown, act: Activity, log: (s: string) => void) {
  const base = `/${c.id}/`;
  const send = (res: http.ServerResponse, head: boolean, status: number, type: string, body: Buffer | string) => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(head ? undefined : body);
  };
  const route = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) return send(res, false, 405, 'text/plain', 'GET or HEAD\n');
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (u.pathname === HELLO_PATH) return send(res, head, 200, 'application/json', JSON.stringify(hello(u.searchParams.get('nonce') ?? '')));
    const rest = u.pathname.startsWith(base) ? u.pathname.slice(base.length) : undefined;
    if (rest === 'nix-cache-info') return send(res, head, 200, 'text/x-nix-cache-info', formatCacheInfo({ storeDir: l.storeDir, priority: PRIORITY }));
    const ni = rest && NARINFO.exec(rest);
    if (ni) {
      const t0 = Date.now();
      const text = await t.narinfo(ni[1]!);
      log(`${req.method} ${rest} ${text ? 200 : 404} ${Date.now() - t0} ms`);
      return text ? send(res, head, 200, 'text/x-nix-narinfo', t.served(text)) : send(res, head, 404, 'text/plain', 'not here: Nix builds it\n');
    }
    const nar = rest && NAR.exec(rest);
    const file = nar ? t.narFile(nar[1]!) : undefined;
    const st = file ? await fs.stat(file).catch(() => undefined) : undefined;
    if (!file || !st?.isFile()) return send(res, head, 404, 'text/plain', 'not found\n');
    res.writeHead(200, { 'content-type': 'application/x-nix-nar', 'content-length': st.size });
    if (head) return void res.end();
    const body = createReadStream(file, { highWaterMark: 1 << 20 });
    body.on('error', () => res.destroy());
    body.pipe(res);
  };
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    act.busy++;
    route(req, res)
      .catch((e) => {
        log(`${req.url}: ${errorMessage(e)}`);
        if (!res.headersSent) send(res, false, 404, 'text/plain', 'the translator failed: Nix builds it\n');
        else res.destroy();
      })
      .finally(() => {
        act.busy--;
        act.last = Date.now();
      });
  };
}

/** Listens on the port, or on the socket the quick start bound to it and handed down (`fd`). */
function listen(server: http.Server, port: number, fd?: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    if (fd === undefined) server.listen(port, '127.0.0.1', () => resolve(undefined));
    else server.listen({ fd }, () => resolve(undefined));
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/**
 * Runs the server until it has been idle for `idleMs`. `ready` hears once: listening, another
 * server of this prefix already listening, or why it cannot listen. `listenFd`: a socket already
 * listening on the port, handed down by the wrappers' quick start (start.mjs).
 */
export async function runServer(l: Layout, o: { idleMs: number; listenFd?: number; ready: (r: Ready) => void; log: (s: string) => void }): Promise<void> {
  // before any work, and before the translation threads start: a V8 flag holds for the whole process
  setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
  setFlagsFromString('--no-turbo-inlining');
  const f = translatorFiles(l);
  const c = await readTranslatorConfig(l);
  if (!c) return o.ready({ error: `${l.prefix} has no translator set up`, fix: 'run relonix bootstrap (its store dir must be as long as /nix/store)' });
  const key = await readTranslatorKey(l);
  const { nix } = await activeNix(l);
  await fs.mkdir(f.leases, { recursive: true });
  const act = new Activity();
  const notes = new Notes(f, c.port);
  const t = new Translator({ layout: l, config: c, files: f, key, nix, notes, log: o.log });
  await t.start();
  const server = http.createServer(handler(l, c, t, (nonce) => answerHello(l.prefix, l.storeDir, nonce, key), act, o.log));
  server.keepAliveTimeout = 5000;
  const failed = await listen(server, c.port, o.listenFd);
  if (failed) {
    if (failed.code === 'EADDRINUSE' && (await whoListens(c.port, l.prefix, key)) === 'ours') return o.ready({ port: c.port, pid: process.pid, already: true });
    return o.ready({
      error: `port ${c.port} on 127.0.0.1 cannot be had (${failed.code === 'EADDRINUSE' ? 'another program holds it' : failed.message})`,
      fix: `stop that program, or run relonix bootstrap again: it picks a free port for ${l.prefix}`,
    });
  }
  const serverLine = `${process.pid} ${readProcStat(process.pid)?.startTime ?? 0} ${c.port}\n`;
  await writeFileAtomic(f.server, serverLine);
  o.ready({ port: c.port, pid: process.pid });
  let closed: Promise<void> = Promise.resolve();
  await untilIdle(f, act, o.idleMs, serverLine, () => {
    closed = closeServer(server);
  });
  await closed;
}

/**
 * Waits for the leases to run out, then stops under the lock (see the file's comment): the
 * listening socket closes inside it, so a server started next finds the port free.
 */
async function untilIdle(f: TranslatorFiles, act: Activity, idleMs: number, serverLine: string, closeListener: () => void): Promise<void> {
  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const live = await act.sweep(f);
    if (!stopping && (live || act.busy || Date.now() - act.last < idleMs)) continue;
    const done = await withLock(f.lock, { what: 'stop of the translator', waitMs: 10_000 }, async () => {
      const mine = await fs.readFile(f.server, 'utf8').catch(() => '');
      if (!stopping && ((await act.sweep(f)) || act.busy)) return false;
      if (mine === serverLine) await fs.rm(f.server, { force: true });
      closeListener();
      return true;
    }).catch(() => {
      if (stopping) closeListener();
      return stopping;
    });
    if (done) return;
  }
}
