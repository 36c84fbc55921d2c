// Debian's nginx-light as a real WebDAV origin on 127.0.0.1: GET/HEAD serve, PUT/DELETE write.
// Started with a temporary prefix and config, stopped (and its process reaped) by stop().
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface Nginx {
  url: string;
  root: string;
  port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, errLog: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${existsSync(errLog) ? readFileSync(errLog, 'utf8') : ''}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('nginx did not start listening');
}

export async function startNginx(dir: string): Promise<Nginx> {
  const bin = '/usr/sbin/nginx';
  if (!existsSync(bin)) throw new Error('nginx is not installed (apt-get install nginx-light); the cache HTTP tests need it');
  const root = path.join(dir, 'www');
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  mkdirSync(root, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  const errLog = path.join(dir, 'logs', 'error.log');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${errLog} warn;
${process.getuid?.() === 0 ? 'user root root;' : ''}
events { worker_connections 256; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  types { text/x-nix-narinfo narinfo; application/json json; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    client_max_body_size 0;
    location / {
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
`,
  );
  const child = spawn(bin, ['-c', conf, '-p', dir], { stdio: 'ignore' });
  await waitForPort(port, child, errLog);
  return {
    url: `http://127.0.0.1:${port}`,
    root,
    port,
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** nginx under `dir`/nginx for `fn` alone, stopped after it whatever happens. */
export async function withNginx<T>(dir: string, fn: (ngx: Nginx) => Promise<T>): Promise<T> {
  const ngx = await startNginx(path.join(dir, 'nginx'));
  try {
    return await fn(ngx);
  } finally {
    await ngx.stop();
  }
}
