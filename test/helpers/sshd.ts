// A second host on the same machine, for the remote-build tests: test users with passwd entries
// (a copy of /etc/passwd and /etc/group with them added, bind-mounted over the originals inside
// private mount namespaces only), and an sshd on 127.0.0.1 whose sessions see another directory
// tree at the prefix's path, so the same prefix path holds a different store on each side. Both
// sides run with the host's Nix hidden (hide-nix.ts). Host and user keys are made here.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { collect, type RunResult } from './cli.ts';
import { withoutHostNix } from './hide-nix.ts';
import { RELONIX } from './paths.ts';
import { run } from './tools.ts';

export interface TestUser {
  name: string;
  uid: number;
  home: string;
}

export interface Passwd {
  passwd: string;
  group: string;
}

/** Copies of /etc/passwd and /etc/group in `dir` with `users` added (each its own group). */
export async function passwdWith(dir: string, users: TestUser[]): Promise<Passwd> {
  const passwd = path.join(dir, 'passwd');
  const group = path.join(dir, 'group');
  const add = (file: string, lines: string[]) => fs.readFile(file, 'utf8').then((t) => (t.endsWith('\n') ? t : `${t}\n`) + lines.map((x) => `${x}\n`).join(''));
  await fs.writeFile(
    passwd,
    await add(
      '/etc/passwd',
      users.map((u) => `${u.name}:x:${u.uid}:${u.uid}::${u.home}:/bin/sh`),
    ),
    { mode: 0o644 },
  );
  await fs.writeFile(
    group,
    await add(
      '/etc/group',
      users.map((u) => `${u.name}:x:${u.uid}:`),
    ),
    { mode: 0o644 },
  );
  return { passwd, group };
}

/**
 * argv that runs `argv` (as root) in a namespace with the host's Nix hidden, the passwd copies in
 * place and each [source, target] of `binds` bind-mounted.
 */
export function inHost(pw: Passwd, binds: [string, string][], argv: string[]): string[] {
  const mounts = [`mount --bind '${pw.passwd}' /etc/passwd`, `mount --bind '${pw.group}' /etc/group`, ...binds.map(([s, t]) => `mount --bind '${s}' '${t}'`)];
  return withoutHostNix(['sh', '-c', `set -e\n${mounts.join('\n')}\nexec "$@"`, 'in-host', ...argv]);
}

/** argv that runs `argv` as the user, with an empty environment but PATH (and `env` entries). */
export function asTestUser(u: TestUser, argv: string[], env: string[] = []): string[] {
  return ['setpriv', `--reuid=${u.uid}`, `--regid=${u.uid}`, '--clear-groups', 'env', '-i', 'PATH=/usr/bin:/bin', ...env, ...argv];
}

/** Runs argv (built with inHost) to its end. */
export function runIn(argv: string[]): Promise<RunResult> {
  const [cmd, ...rest] = argv;
  return collect(spawn(cmd!, rest, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' } }));
}

/** `relonix ARGS` as the user, in the host that `pw` and `binds` make. */
export function relonixIn(pw: Passwd, binds: [string, string][], u: TestUser, args: string[], env: string[] = []): Promise<RunResult> {
  return runIn(inHost(pw, binds, asTestUser(u, [process.execPath, RELONIX, ...args], env)));
}

/** An ed25519 key pair without a passphrase, owned by `owner`. */
export async function sshKey(file: string, owner?: TestUser): Promise<string> {
  const r = run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', path.basename(file), '-f', file]);
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  if (owner) {
    await fs.chown(file, owner.uid, owner.uid);
    await fs.chown(`${file}.pub`, owner.uid, owner.uid);
  }
  return file;
}

export interface Sshd {
  port: number;
  /** sshd's log so far */
  log(): string;
  stop(): Promise<void>;
}

/**
 * sshd on 127.0.0.1:`port` for `user` with `authorized` as its one authorized key, in a namespace
 * where `binds` are mounted (the remote's tree at the prefix's path) and /run is its own.
 */
export async function startSshd(dir: string, o: { port: number; pw: Passwd; binds: [string, string][]; user: TestUser; authorized: string }): Promise<Sshd> {
  await fs.mkdir(dir, { recursive: true });
  const hostKey = await sshKey(path.join(dir, 'host_ed25519'));
  const auth = path.join(dir, 'authorized_keys');
  await fs.copyFile(`${o.authorized}.pub`, auth);
  await fs.chmod(auth, 0o644);
  const conf = path.join(dir, 'sshd_config');
  await fs.writeFile(
    conf,
    [
      `Port ${o.port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${auth}`,
      `AllowUsers ${o.user.name}`,
      // the test's directories live under /tmp, which is world-writable
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  // sshd's privilege separation directory, in a /run of the namespace's own
  const argv = inHost(o.pw, o.binds, [
    'sh',
    '-c',
    'mount -t tmpfs -o size=1m,mode=755 relonix-sshd-run /run && mkdir -m 755 /run/sshd && exec /usr/sbin/sshd -D -e -f "$1"',
    'sshd',
    conf,
  ]);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      log += d;
      if (log.includes(`Server listening on 127.0.0.1 port ${o.port}`)) resolve();
    });
    child.on('close', (code) => reject(new Error(`sshd exited ${code} before listening:\n${log}`)));
  });
  return {
    port: o.port,
    log: () => log,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
