// Starting the translator when a command needs it, holding it while the command runs, stopping it.
// The bin/ wrappers check the server file in sh (no node start-up when it runs) and call
// `relonix translator start` only when it does not; relonix build calls ensureTranslator itself.
import { spawn } from 'node:child_process';
import { closeSync, promises as fs, openSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../prefix/layout.ts';
import { RelonixError } from '../util/errors.ts';
import { withLock } from '../util/lock.ts';
import { processAlive } from '../util/proc.ts';
import { readTranslatorConfig, readTranslatorKey, substituterUrl, type TranslatorFiles, translatorFiles } from './config.ts';
import { whoListens } from './hello.ts';
import type { Ready } from './server.ts';

/** The constructor of the one refusal: the translator cannot run, so Nix would build what upstream has. */
export function translatorUnavailable(l: Layout, why: string, fix: string): RelonixError {
  return new RelonixError(`the translator of ${l.prefix} cannot run: ${why}; until it does, Nix builds what it would have substituted from upstream`, {
    kind: 'failure',
    hint: `${fix} (RELONIX_NO_TRANSLATOR=1 runs a command without it)`,
  });
}

/** The running server's pid and port, from the server file, if that process still runs. */
export async function runningServer(f: TranslatorFiles): Promise<{ pid: number; port: number } | undefined> {
  const text = await fs.readFile(f.server, 'utf8').catch(() => '');
  const [pid, start, port] = text.trim().split(' ');
  if (!pid || !start || !port) return undefined;
  return processAlive(Number(pid), start) ? { pid: Number(pid), port: Number(port) } : undefined;
}

/**
 * Marks this process as one that needs the server: it runs at least as long as this process does.
 * What the translator has to say arrives in the lease and goes to `say` (checked every second);
 * the returned function stops that and gives the lease back.
 */
export async function holdLease(f: TranslatorFiles, say: (text: string) => void): Promise<() => Promise<void>> {
  const lease = path.join(f.leases, String(process.pid));
  await fs.mkdir(f.leases, { recursive: true });
  await fs.writeFile(lease, '');
  let seen = 0;
  const relay = async () => {
    const text = await fs.readFile(lease).catch(() => Buffer.alloc(0));
    if (text.length > seen) say(text.subarray(seen).toString('utf8'));
    seen = Math.max(seen, text.length);
  };
  const timer = setInterval(() => void relay(), 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await relay();
    await fs.rm(lease, { force: true });
  };
}

/** How this relonix runs itself: the same node, flags and entry file. */
function selfArgv(): string[] {
  return [...process.execArgv, process.argv[1]!];
}

/** Starts the server detached, its output to the log; resolves with its ready line. */
function spawnServer(l: Layout, f: TranslatorFiles): Promise<Ready> {
  const log = openSync(f.log, 'a', 0o600);
  try {
    const child = spawn(process.execPath, [...selfArgv(), 'translator', 'serve', '--prefix', l.prefix], {
      cwd: '/',
      detached: true,
      stdio: ['ignore', 'pipe', log],
    });
    return new Promise<Ready>((resolve) => {
      let text = '';
      const timer = setTimeout(() => finish({ error: 'it did not start within 60 seconds', fix: `see ${f.log}` }), 60_000);
      const finish = (r: Ready) => {
        clearTimeout(timer);
        child.stdout!.destroy();
        child.unref();
        resolve(r);
      };
      child.stdout!.on('data', (d: Buffer) => {
        text += d.toString();
        const nl = text.indexOf('\n');
        if (nl < 0) return;
        try {
          finish(JSON.parse(text.slice(0, nl)) as Ready);
        } catch {
          finish({ error: `it said ${JSON.stringify(text.slice(0, 200))}`, fix: `see ${f.log}` });
        }
      });
      child.on('error', (e) => finish({ error: e.message, fix: 'check that node runs' }));
      child.on('exit', (code) => finish({ error: `it exited (${code}) before listening`, fix: `see ${f.log}` }));
    });
  } finally {
    closeSync(log);
  }
}

/**
 * The translator of the prefix, running and answering as ours: its substituter URL, or undefined
 * when the prefix has none. Two commands at once start one server: the second waits for the lock
 * and finds it running.
 */
export async function ensureTranslator(l: Layout): Promise<string | undefined> {
  const c = await readTranslatorConfig(l);
  if (!c) return undefined;
  const f = translatorFiles(l);
  const key = await readTranslatorKey(l);
  const ours = async () => (await runningServer(f)) !== undefined && (await whoListens(c.port, l.prefix, key)) === 'ours';
  if (await ours()) return substituterUrl(c);
  await withLock(f.lock, { what: 'start of the translator', waitMs: 30_000 }, async () => {
    if (await ours()) return;
    const r = await spawnServer(l, f);
    if ('error' in r) throw translatorUnavailable(l, r.error, r.fix);
  });
  return substituterUrl(c);
}

/** Stops the running server (it removes its own files); false when none ran. */
export async function stopTranslator(l: Layout): Promise<boolean> {
  const f = translatorFiles(l);
  const s = await runningServer(f);
  if (!s) return false;
  process.kill(s.pid, 'SIGTERM');
  for (let i = 0; i < 100 && (await runningServer(f)); i++) await new Promise((r) => setTimeout(r, 100));
  return true;
}
