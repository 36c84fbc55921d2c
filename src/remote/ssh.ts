// Reaching a builder the way Nix will: the host's ssh with the options the prefix's ssh config
// gives it, and the failures people meet, each turned into what to do about it.
import { noPasswdEntry, passwdName } from '../host/passwd.ts';
import type { Layout } from '../prefix/layout.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { shQuote } from '../util/shell.ts';
import { runTool, type ToolResult } from '../util/spawn.ts';
import { type Builder, sshOptions } from './machines.ts';

/**
 * OpenSSH looks up the running uid in the passwd database and stops ("No user exists for uid N")
 * when it has no entry, as on rootless containers that run an arbitrary uid: said before ssh says it.
 */
export function checkPasswdEntry(): void {
  if (passwdName() === undefined) throw noPasswdEntry();
}

/** Pure: the ssh-keyscan line that adds a builder's host key to the prefix's known_hosts. */
export function keyscanLine(l: Layout, b: Pick<Builder, 'host' | 'port'>): string {
  return `ssh-keyscan ${b.port && b.port !== 22 ? `-p ${b.port} ` : ''}${b.host} >> ${shQuote(l.knownHosts)}`;
}

/** Pure: ssh's argv that runs `command` (a shell line) on the builder with exactly the options Nix's ssh will get. */
export function sshArgs(l: Layout, b: Builder, command: string): string[] {
  const opts = sshOptions(l, b).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  return ['-F', '/dev/null', ...opts, '-o', 'ConnectTimeout=15', '-x', '-a', b.host, '--', command];
}

/** Runs `command` on the builder, `input` on its stdin, and collects what it prints. */
export async function sshRun(l: Layout, b: Builder, command: string, input?: NodeJS.ReadableStream): Promise<ToolResult> {
  try {
    return await runTool('ssh', sshArgs(l, b, command), process.env, input);
  } catch (e) {
    throw noSsh(e);
  }
}

/** What an ssh that could not be started means: ENOENT is the missing client, with the fix. */
export function noSsh(e: unknown): unknown {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return e;
  return noSshClient(e);
}

/** The host has no ssh client, which Nix runs to reach a builder. */
export function noSshClient(e: unknown): RelonixError {
  return new RelonixError(`ssh is not on this host's PATH, and Nix runs it to reach a remote builder (${errorMessage(e)})`, {
    kind: 'preflight',
    hint: 'install the OpenSSH client (apt-get install openssh-client, dnf install openssh-clients, apk add openssh-client) or put its directory on PATH',
  });
}

/** What an ssh that exited 255 (its own failure, not the remote command's) means, with the fix. */
export function sshFailure(l: Layout, b: Builder, r: ToolResult): RelonixError {
  const said = r.stderr.trim().split('\n').slice(-4).join('\n');
  if (/No user exists for uid/.test(said)) checkPasswdEntry();
  if (/Host key verification failed|No \S+ host key is known|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(said)) {
    return hostKeyUnknown(l, b, said);
  }
  if (/Permission denied|Too many authentication failures/.test(said)) return loginRefused(b, said);
  return builderUnreachable(b, said || `ssh exited ${r.code}`);
}

/** ssh does not know (or no longer trusts) the builder's host key. */
export function hostKeyUnknown(l: Layout, b: Builder, said: string): RelonixError {
  return new RelonixError(`the host key of ${b.url} is not in ${l.knownHosts}, so ssh refuses to connect:\n${said}`, {
    kind: 'preflight',
    hint: `add it (after checking its fingerprint with the builder's owner): ${keyscanLine(l, b)}`,
  });
}

/** The builder's sshd refused the key (or lack of one). */
export function loginRefused(b: Pick<Builder, 'url' | 'user' | 'host'>, said: string): RelonixError {
  return new RelonixError(`${b.url} refused the login:\n${said}`, {
    kind: 'preflight',
    hint: `pass the private key with --key FILE, and add its public half to ~${b.user ?? ''}/.ssh/authorized_keys on ${b.host}`,
  });
}

/** ssh could not connect to the builder at all. */
export function builderUnreachable(b: Pick<Builder, 'url'>, said: string): RelonixError {
  return new RelonixError(`cannot reach ${b.url} over ssh:\n${said}`, {
    kind: 'network',
    hint: `check the host and the port, and that sshd listens there (ssh -p PORT USER@HOST true); then run the same relonix builder add again`,
  });
}
