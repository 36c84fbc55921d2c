// Which commands are asking the translator now: what it says about a translation (how far a burst
// is, a refusal, an upstream that is down) is for those, not for every command that holds a lease
// (an interactive nix-shell holds one for as long as the shell runs). A command asks over a
// loopback connection to the translator's port: the kernel's table of TCP sockets names the inode of
// the command's end of each, and the holder of a lease, or a process under it (the Nix that
// `relonix run` starts), holds that inode among its descriptors. Nix keeps its connections open while
// it runs; the server closes one idle for 5 s.
import { promises as fs } from 'node:fs';
import { listProcesses } from '../util/proc.ts';

/**
 * The inodes of the client ends of established connections to 127.0.0.1:`port`, from the text of
 * /proc/net/tcp ("sl local_address rem_address st … inode", addresses as hex IP:port).
 */
export function clientInodes(table: string, port: number): Set<number> {
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const out = new Set<number>();
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // f[3] 01: ESTABLISHED; f[9]: the inode (0 for a socket already let go)
    if (f[2] === want && f[3] === '01' && f[9] && f[9] !== '0') out.add(Number(f[9]));
  }
  return out;
}

/** Each process's children, from /proc/PID/stat's parent field; empty when /proc cannot be listed. */
async function childrenByParent(): Promise<Map<number, number[]>> {
  const byParent = new Map<number, number[]>();
  for (const p of await listProcesses()) byParent.set(p.ppid, [...(byParent.get(p.ppid) ?? []), p.pid]);
  return byParent;
}

/** Whether the process holds one of `inodes` among its descriptors (false when they cannot be read). */
async function holdsSocket(pid: number, inodes: Set<number>): Promise<boolean> {
  const fds = await fs.readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const m = /^socket:\[(\d+)\]$/.exec(await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
    if (m && inodes.has(Number(m[1]))) return true;
  }
  return false;
}

/** How long an answer of askingHolders stands: a burst of refusals asks once, not once per path. */
const FRESH_MS = 1000;
let last: { key: string; at: number; asking: Promise<number[] | undefined> } | undefined;

/**
 * Of the lease holders, those that (or whose descendants) hold a connection to the translator at
 * 127.0.0.1:`port`; undefined when none can be told apart (no connection seen, or /proc hides
 * them), for the caller to tell every holder rather than none.
 */
export function askingHolders(holders: number[], port: number): Promise<number[] | undefined> {
  const key = `${port} ${holders.join(' ')}`;
  if (last?.key !== key || Date.now() - last.at > FRESH_MS) last = { key, at: Date.now(), asking: findAsking(holders, port) };
  return last.asking;
}

async function findAsking(holders: number[], port: number): Promise<number[] | undefined> {
  // one holder hears it either way
  if (holders.length < 2) return undefined;
  const inodes = clientInodes(await fs.readFile('/proc/net/tcp', 'latin1').catch(() => ''), port);
  if (!inodes.size) return undefined;
  const children = await childrenByParent();
  const asking: number[] = [];
  for (const holder of holders) {
    const tree = [holder];
    for (let i = 0; i < tree.length && tree.length < 10_000; i++) tree.push(...(children.get(tree[i]!) ?? []));
    const held = await Promise.all(tree.map((pid) => holdsSocket(pid, inodes)));
    if (held.includes(true)) asking.push(holder);
  }
  return asking.length ? asking : undefined;
}
