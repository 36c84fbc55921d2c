// What the relonix build tests share: a graph of a dozen sleeping derivations whose every real build
// leaves its name in an impure log outside the store, relonix build run as a process group of its
// own (so the whole group can be signalled, or the whole tree killed), checks that a cache's every
// narinfo has its whole NAR, and an origin in front of nginx that refuses some PUTs.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { parseNarInfo } from '../../src/cache/narinfo.ts';
import type { FixtureName } from '../../src/demo/fixture.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { serveDirectory } from '../../src/net/serve.ts';
import { parseDerivation } from '../../src/store/aterm.ts';
import { toNixBase32 } from '../../src/store/nixbase32.ts';
import { asUser, eventOf, onLines, type RelonixEvent, type RunResult, relonix } from './cli.ts';
import { prefixFor } from './paths.ts';

export { freePort } from './nginx.ts';

export interface BuildPrefix {
  prefix: string;
  /** the temporary directory holding the prefix, for everything else the test keeps */
  top: string;
  secret: string;
}

/** A prefix bootstrapped from the fixture tarball `fixture` as `uid` (with `args`, such as --store-dir), and a signing key it can read. */
export async function bootstrappedPrefix(uid: number | undefined, tag: string, fixture: FixtureName, args: string[] = []): Promise<BuildPrefix> {
  const fx = await ensureFixture({ name: fixture });
  const server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
  try {
    const prefix = await prefixFor(uid, tag);
    const top = path.dirname(prefix);
    const r = await relonix(uid, ['bootstrap', '--prefix', prefix, ...args, '--url', `${server.url}/${path.basename(fx.tarball)}`]);
    if (r.code !== 0) throw new Error(`bootstrap failed:\n${r.stdout}\n${r.stderr}`);
    const kg = await relonix(uid, ['keygen', '--name', `${tag}-1`, '--out', path.join(top, 'keys')]);
    if (kg.code !== 0) throw new Error(`keygen failed: ${kg.stderr}`);
    return { prefix, top, secret: path.join(top, 'keys', `${tag}-1.secret`) };
  } finally {
    await server.close();
  }
}

/** The graph's derivations by name, each with the names it depends on. */
/** relonix build's arguments: the prefix, the cache and its key, relonix's options `own`, then -- and nix-build's `nix`. */
export function buildArgv(o: { prefix: string; cache: string; secret: string }, own: string[], nix: string[]): string[] {
  return ['build', '--prefix', o.prefix, '--cache', o.cache, '--secret-key', o.secret, ...own, '--', ...nix];
}

export const GRAPH: Record<string, string[]> = {
  l1: [],
  l2: [],
  l3: [],
  l4: [],
  m1: ['l1', 'l2'],
  m2: ['l2', 'l3'],
  m3: ['l3', 'l4'],
  m4: ['l4', 'l1'],
  u1: ['m1', 'm2'],
  u2: ['m2', 'm3'],
  u3: ['m3', 'm4'],
  top: ['u1', 'u2', 'u3'],
};
export const NAMES = Object.keys(GRAPH);

/**
 * The graph as a Nix expression. `salt` makes another graph of the same shape; `fail` names one
 * derivation whose builder fails; each output refers to its dependencies, so closures chain.
 */
export function graphNix(o: { log: string; salt: string; sleep?: number; fail?: string }): string {
  const defs = NAMES.map((n) => `  ${n} = mk "${n}" [ ${GRAPH[n]!.join(' ')} ];`).join('\n');
  return `let
  mk = name: deps: derivation {
    name = "g-\${name}";
    salt = "${o.salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      echo \${name} >> ${o.log}
      echo building \${name}
      /bin/sleep ${o.sleep ?? 1}
      \${if name == "${o.fail ?? ''}" then "echo failing on purpose; exit 1" else ""}
      /bin/mkdir $out
      echo \${toString deps} > $out/deps
      echo "\${name} $(/bin/date +%s.%N)" >> ${o.log}.finished
    '' ];
  };
${defs}
in top
`;
}

/** The names the impure log holds, one a real build, in order. */
export function builtNames(log: string): string[] {
  try {
    return readFileSync(log, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

export interface GroupRun {
  child: ChildProcess;
  events: RelonixEvent[];
  done: Promise<RunResult>;
}

/**
 * Runs `relonix ARGS` as `uid` in a process group of its own, with the host's Nix hidden; `onEvent`
 * sees each --json event as it comes.
 */
export function runGroup(uid: number | undefined, args: string[], onEvent?: (e: RelonixEvent, run: GroupRun) => void): GroupRun {
  const { cmd, argv } = asUser(uid, args);
  const child = spawn(cmd, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: uid === undefined ? { PATH: '/usr/bin:/bin' } : {} });
  const run: GroupRun = { child, events: [], done: undefined as unknown as Promise<RunResult> };
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  onLines(child.stdout!, (line) => {
    const e = eventOf(line);
    if (!e) return;
    run.events.push(e);
    onEvent?.(e, run);
  });
  child.stderr!.on('data', (d) => (stderr += d));
  run.done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return run;
}

function children(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${n}/stat`, 'latin1');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    kids.set(ppid, [...(kids.get(ppid) ?? []), Number(n)]);
  }
  return kids;
}

/**
 * SIGKILL to `pid` and everything below it, as a container's end kills it: nix-build and its
 * builders too (Nix starts each builder with setsid(), out of reach of a signal to the group).
 * The tree is stopped first, so that nothing forks between being found and being killed.
 */
export function killTree(pid: number): number[] {
  const all: number[] = [];
  for (let round = 0; round < 3; round++) {
    const kids = children();
    const walk = (p: number) => {
      if (!all.includes(p)) {
        all.push(p);
        try {
          process.kill(p, 'SIGSTOP');
        } catch {}
      }
      for (const c of kids.get(p) ?? []) walk(c);
    };
    walk(pid);
  }
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  }
  return all;
}

export interface CacheContent {
  /** store path basenames with a narinfo */
  paths: string[];
  /** what is wrong: a narinfo whose NAR is missing, short or not what FileHash says */
  broken: string[];
}

/** Reads a cache directory (file:// or an origin's root) and checks every narinfo's NAR. */
export async function readCacheDir(dir: string): Promise<CacheContent> {
  const out: CacheContent = { paths: [], broken: [] };
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const n of names.filter((x) => x.endsWith('.narinfo')).sort()) {
    const ni = parseNarInfo(await fs.readFile(path.join(dir, n), 'utf8'), n);
    out.paths.push(path.basename(ni.storePath));
    const nar = await fs.readFile(path.join(dir, ni.url)).catch(() => undefined);
    if (!nar) out.broken.push(`${n}: ${ni.url} is missing`);
    else if (nar.length !== ni.fileSize) out.broken.push(`${n}: ${ni.url} has ${nar.length} bytes, not ${ni.fileSize}`);
    else if (`sha256:${toNixBase32(createHash('sha256').update(nar).digest())}` !== ni.fileHash) out.broken.push(`${n}: ${ni.url} is not ${ni.fileHash}`);
  }
  return out;
}

/** The graph name of a store path basename (`…-g-m3` → `m3`), or undefined. */
export function graphName(basename: string): string | undefined {
  const m = /^[0-9a-z]{32}-g-(\w+)$/.exec(basename);
  return m && NAMES.includes(m[1]!) ? m[1] : undefined;
}

/** Output paths of the derivations, read from the .drv files. */
export async function outputsOf(drvs: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const d of drvs) for (const o of parseDerivation(await fs.readFile(d)).outputs) out.set(d, o.path);
  return out;
}

export interface Origin {
  url: string;
  puts: number;
  refused: number;
  close(): Promise<void>;
}

/**
 * An origin on `port` that passes every request to nginx, except every `refuseEvery`-th PUT, which
 * it answers 503 (its body read and dropped), as an overloaded CDN origin does.
 */
export async function startOrigin(upstreamPort: number, o: { port?: number; refuseEvery?: number } = {}): Promise<Origin> {
  const origin: Origin = { url: '', puts: 0, refused: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    if (req.method === 'PUT' && o.refuseEvery && ++origin.puts % o.refuseEvery === 0) {
      origin.refused++;
      req.resume();
      req.on('end', () => res.writeHead(503, { 'content-type': 'text/plain' }).end('busy\n'));
      return;
    }
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  origin.url = `http://127.0.0.1:${port}`;
  origin.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return origin;
}
