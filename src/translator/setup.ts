// Setting up a prefix's translator at bootstrap: its key (made once, 0600), a free loopback port,
// each upstream checked (a store dir of another length is refused; one that cannot be reached is a
// warning, and Nix builds until it answers), the config, and the script the bin/ wrappers source.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { generateKey, parsePublicKey } from '../cache/keys.ts';
import { openTarget } from '../cache/targets.ts';
import { type Layout, UPSTREAM_STORE_DIR_BYTES } from '../prefix/layout.ts';
import { NIXOS_CACHE, NIXOS_KEY, openUpstream } from '../translate/upstream.ts';
import { findOwnBundle } from '../util/bundle.ts';
import { cacheNeedsKey, errorMessage, isKind, RelonixError } from '../util/errors.ts';
import { copyFileAtomic, exists, writeFileAtomic } from '../util/fs.ts';
import { shQuote } from '../util/shell.ts';
import {
  DEFAULT_UPSTREAMS,
  keyId,
  nthPort,
  preferredPort,
  readTranslatorConfig,
  readTranslatorKey,
  substituterUrl,
  type TranslatorConfig,
  type TranslatorFiles,
  translatorFiles,
  type UpstreamConfig,
} from './config.ts';
import { whoListens } from './hello.ts';

export interface TranslatorSetup {
  /** the substituter URL and the key its narinfos are signed with: none when the prefix has no translator */
  substituter?: string;
  publicKey?: string;
  /** what the user should hear once: what a store dir of another length costs, an upstream that cannot be reached */
  notes: string[];
}

const UPSTREAM_CHECK_MS = 15_000;

/** Why a prefix gets no translator, or undefined when it does. */
export function noTranslatorReason(l: Layout, upstreams: UpstreamConfig[]): string | undefined {
  if (!upstreams.length) return 'no upstream (bootstrap --no-upstream)';
  const n = Buffer.byteLength(l.storeDir);
  if (n === UPSTREAM_STORE_DIR_BYTES) return undefined;
  return `the store dir ${l.storeDir} is ${n} bytes, not ${UPSTREAM_STORE_DIR_BYTES} as /nix/store: upstream's binaries cannot be rewritten into it, so Nix builds everything here (a compiler alone takes hours on a small host); a prefix whose <prefix>/s is ${UPSTREAM_STORE_DIR_BYTES} bytes (the default /tmp/nix) or a --store-dir of ${UPSTREAM_STORE_DIR_BYTES} bytes avoids that`;
}

async function ensureKey(f: TranslatorFiles): Promise<void> {
  if (await exists(f.secretKey)) return;
  const k = generateKey(`relonix-${keyId(f.dir).slice(0, 8)}-1`);
  await writeFileAtomic(f.publicKey, `${k.public}\n`, 0o644);
  await writeFileAtomic(f.secretKey, `${k.secret}\n`, 0o600);
}

function tryBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** The port: the one already chosen while it is free or ours, else the first free one from the prefix's own. */
async function pickPort(l: Layout, previous: number | undefined): Promise<number> {
  const key = await readTranslatorKey(l);
  const first = previous ?? preferredPort(l.prefix, process.getuid?.() ?? 0);
  for (let n = 0; n < 64; n++) {
    const port = nthPort(first, n);
    if ((await tryBind(port)) || (await whoListens(port, l.prefix, key)) === 'ours') return port;
  }
  throw noFreePort(l, first);
}

/** 64 loopback ports from the prefix's own are all held by other programs. */
export function noFreePort(l: Layout, first: number): RelonixError {
  return new RelonixError(`no free loopback port for the translator of ${l.prefix} (tried 64 from ${first})`, {
    kind: 'preflight',
    hint: 'free some ports on 127.0.0.1, or bootstrap with --no-upstream to go without binaries from upstream',
  });
}

/** An upstream that answers, and cannot serve this prefix (a store dir of another length, no cache there). */
export function upstreamUnusable(url: string, e: unknown): RelonixError {
  return new RelonixError(`the upstream ${url} cannot serve this prefix: ${errorMessage(e)}`, {
    kind: 'usage',
    hint: "name an upstream for a store dir as long as this prefix's (--upstream URL --upstream-key KEY), or --no-upstream",
    cause: e,
  });
}

/** An upstream that did not answer in time: said as a warning, never thrown to the user. */
class NoAnswer extends Error {}

/** Checks one upstream: refused when its store dir cannot be rewritten into ours; a note when it cannot be reached. */
async function checkUpstream(l: Layout, u: UpstreamConfig): Promise<string | undefined> {
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new NoAnswer(`no answer in ${UPSTREAM_CHECK_MS / 1000} s`)), UPSTREAM_CHECK_MS).unref(),
  );
  try {
    await Promise.race([openUpstream(u.url, u.keys, l.storeDir, {}, 0), timeout]);
    return undefined;
  } catch (e) {
    if (isKind(e, 'integrity') || isKind(e, 'usage')) throw upstreamUnusable(u.url, e);
    return `the upstream ${u.url} cannot be reached now (${errorMessage(e)}): until it answers, Nix builds what it would have substituted`;
  }
}

/**
 * The sh the bin/ wrappers source: a lease for the command, and the server started when it does not
 * run. The lease is a FIFO the command holds open all its life; the relay, cat, copies what the
 * translator writes into it to the command's stderr and ends when its last writer closes it: as the
 * command ends, so whoever waits for the command's stderr to close waits for nothing more. A watch
 * (once a second, holding no stderr) ends the relay when something the command started keeps the
 * lease open after it, and removes the lease. The two descriptors are ones the caller left free (a
 * script may hand the command its own, a lock's fd 9 say), else there is no relay. The why lives
 * here rather than in the script: the script's text ships in the package.
 */
export function ensureScript(l: Layout, f: TranslatorFiles, node: string, entry: string): string {
  const q = shQuote;
  return `# relonix: sourced by the bin/ wrappers of ${q(l.prefix)}. While the command runs, the translator
# serves upstream's binaries to its Nix; RELONIX_NO_TRANSLATOR=1 runs it without.
if [ -z "\${RELONIX_NO_TRANSLATOR:-}" ] && [ -r ${q(f.config)} ]; then
  relonix_translator_runs() {
    [ -r ${q(f.server)} ] || return 1
    read -r _rl_pid _rl_start _rl_port 2>/dev/null < ${q(f.server)} || return 1
    read -r _rl_stat 2>/dev/null < "/proc/$_rl_pid/stat" || return 1
    _rl_stat=\${_rl_stat##*) }
    set -- $_rl_stat
    [ "$1" != Z ] && [ "\${20}" = "$_rl_start" ]
  }
  mkdir -p ${q(f.leases)} 2>/dev/null
  _rl_lease=${q(f.leases)}/$$
  rm -f "$_rl_lease" 2>/dev/null
  # the lease: a FIFO the command holds open; cat relays it to stderr until the command ends
  _rl_w=
  _rl_r=
  for _rl_fd in 9 8 7 6 5 4 3; do
    [ ! -e "/proc/$$/fd/$_rl_fd" ] || continue
    if [ -z "$_rl_w" ]; then _rl_w=$_rl_fd; else _rl_r=$_rl_fd; break; fi
  done
  if [ -n "$_rl_r" ] && mkfifo -m 600 "$_rl_lease" 2>/dev/null && { eval "command exec $_rl_w<>\\"\\$_rl_lease\\" $_rl_r<\\"\\$_rl_lease\\""; } 2>/dev/null; then
    eval "cat <&$_rl_r $_rl_w>&- >&2 &"
    _rl_cat=$!
    (
      eval "exec $_rl_r<&- $_rl_w>&-"
      while sleep 1; do
        kill -0 "$_rl_cat" 2>/dev/null || break
        _rl_gone=1
        if read -r _rl_st 2>/dev/null < "/proc/$$/stat"; then
          case \${_rl_st##*) } in Z*|X*) ;; *) _rl_gone= ;; esac
        fi
        [ -z "$_rl_gone" ] || { kill "$_rl_cat" 2>/dev/null; break; }
      done
      rm -f "$_rl_lease"
    ) </dev/null >/dev/null 2>&1 &
    eval "exec $_rl_r<&-"
  fi
  if ! relonix_translator_runs; then
    _rl_node=${q(node)}
    [ -x "$_rl_node" ] || _rl_node=node
    if command -v "$_rl_node" >/dev/null 2>&1; then
      "$_rl_node" ${q(f.quickStart)} 2>/dev/null || "$_rl_node" ${q(entry)} translator start --quiet --prefix ${q(l.prefix)} || true
    else
      printf 'relonix: warning: there is no node to start the translator of %s: Nix builds what it would have substituted from upstream\\n' ${q(l.prefix)} >&2
      echo "  fix: put node (20 or newer) on PATH (RELONIX_NO_TRANSLATOR=1 runs a command without the translator)" >&2
    fi
  fi
  unset -f relonix_translator_runs
  unset _rl_pid _rl_start _rl_port _rl_stat _rl_node _rl_lease _rl_cat _rl_fd _rl_w _rl_r
fi
`;
}

/**
 * The quick start the wrappers run when no server runs: it binds the port, hands the listening
 * socket down to the server it starts, and ends without waiting for the server to load. Nix's
 * connections wait in the socket's backlog meanwhile, and the command goes on loading Nix: two
 * node starts one after the other (the full start, then the server it waits for) cost 250-290 ms
 * before Nix ran. A node start that loads no relonix is most of what is left. It exits non-zero
 * (and the wrappers run the full \`relonix translator start\`, which says what is wrong) whenever
 * the port is taken, by the translator itself or anything else, or anything is not as expected;
 * a server that fails after it took the socket tells the commands' leases itself. Node builtins
 * only: it runs before, and without, relonix's own code. A net.Server's descriptor is read off
 * its handle, which node does not document: where that is missing, this exits non-zero as well.
 */
export function quickStartScript(l: Layout, f: TranslatorFiles): string {
  const j = JSON.stringify;
  return `// relonix: the quick start of a prefix's translator, run by its bin/ wrappers (made by relonix bootstrap)
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
const config = JSON.parse(readFileSync(${j(f.config)}, 'utf8'));
if (!Number.isInteger(config.port) || typeof config.entry !== 'string' || !existsSync(config.entry)) process.exit(3);
const server = net.createServer();
server.once('error', () => process.exit(3));
server.listen({ port: config.port, host: '127.0.0.1', exclusive: true }, () => {
  const fd = server._handle?.fd;
  if (!Number.isInteger(fd) || fd < 0) process.exit(3);
  const log = openSync(${j(f.log)}, 'a', 0o600);
  const argv = [config.entry, 'translator', 'serve', '--prefix', ${j(l.prefix)}, '--listen-fd', '3'];
  const child = spawn(process.execPath, argv, { cwd: '/', detached: true, stdio: ['ignore', log, log, fd] });
  child.once('error', () => process.exit(3));
  child.once('spawn', () => {
    // the server file, as the server writes it once listening: commands starting meanwhile find it
    // starting (without it, the server still writes its own)
    const temp = \`\${${j(path.join(f.dir, '.relonix-server'))}}.\${process.pid}.tmp\`;
    try {
      const stat = readFileSync(\`/proc/\${child.pid}/stat\`, 'latin1');
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      writeFileSync(temp, \`\${child.pid} \${start} \${config.port}\\n\`);
      renameSync(temp, ${j(f.server)});
    } catch {
      rmSync(temp, { force: true });
    }
    process.exit(0);
  });
});
`;
}

/** Removes what makes the wrappers start a translator (a re-bootstrap with --no-upstream, say), and says why. */
async function disable(f: TranslatorFiles, why: string): Promise<void> {
  await fs.rm(f.config, { force: true });
  await fs.rm(f.ensureScript, { force: true });
  await fs.rm(f.quickStart, { force: true });
  await writeFileAtomic(f.off, `${why}\n`);
}

export async function setupTranslator(l: Layout, upstreams: UpstreamConfig[]): Promise<TranslatorSetup> {
  const f = translatorFiles(l);
  await fs.mkdir(f.dir, { recursive: true, mode: 0o700 });
  const off = noTranslatorReason(l, upstreams);
  if (off) {
    await disable(f, off);
    return { notes: upstreams.length ? [off] : [] };
  }
  const notes = (await Promise.all(upstreams.map((u) => checkUpstream(l, u)))).filter((n): n is string => !!n);
  await ensureKey(f);
  const previous = await readTranslatorConfig(l).catch(() => undefined);
  const publicKey = (await fs.readFile(f.publicKey, 'utf8')).trim();
  const bundle = findOwnBundle();
  const entry = bundle ? path.join(f.dir, 'relonix.mjs') : process.argv[1]!;
  if (bundle) await copyFileAtomic(bundle, entry);
  const config: TranslatorConfig = {
    version: 1,
    storeDir: l.storeDir,
    port: await pickPort(l, previous?.port),
    id: keyId(publicKey),
    upstreams,
    node: process.execPath,
    entry,
  };
  await writeFileAtomic(f.config, `${JSON.stringify(config, null, 2)}\n`);
  await writeFileAtomic(f.quickStart, quickStartScript(l, f));
  await writeFileAtomic(f.ensureScript, ensureScript(l, f, config.node, entry));
  await fs.rm(f.off, { force: true });
  return { substituter: substituterUrl(config), publicKey, notes };
}

/**
 * The upstreams the options name: cache.nixos.org with its key by default, none with --no-upstream.
 * Every --upstream-key is accepted from every --upstream; cache.nixos.org needs none given.
 */
export function upstreamsOf(urls: string[] | false, keys: string[]): UpstreamConfig[] {
  if (urls === false) {
    if (keys.length) throw keyWithoutUpstream();
    return [];
  }
  if (!urls.length) return keys.length ? [{ url: NIXOS_CACHE, keys }] : DEFAULT_UPSTREAMS;
  for (const k of keys) parsePublicKey(k);
  return urls.map((url) => {
    const own = keys.length ? keys : url.replace(/\/+$/, '') === NIXOS_CACHE ? [NIXOS_KEY] : [];
    if (!own.length) {
      throw cacheNeedsKey('--upstream', url, '--upstream-key');
    }
    openTarget(url);
    return { url: url.replace(/\/+$/, ''), keys: own };
  });
}

/** --upstream-key with --no-upstream. */
export function keyWithoutUpstream(): RelonixError {
  return new RelonixError('--upstream-key with --no-upstream names a key for nothing', { kind: 'usage', hint: 'drop one of them' });
}
