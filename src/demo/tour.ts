// The demo, start to end: the mirror's tarball (made once), served on loopback, a full bootstrap from
// it into the demo prefix, and a first build with the relocated Nix.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type BootstrapResult, runBootstrap } from '../bootstrap/engine.ts';
import { serveDirectory } from '../net/serve.ts';
import { activeNix } from '../prefix/environment.ts';
import { layout } from '../prefix/layout.ts';
import { runInPrefix } from '../prefix/tools.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { shQuote } from '../util/shell.ts';
import { ensureFixture } from './mirror.ts';

const DEMO_EXPR = `derivation {
  name = "hello-from-relonix";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo hello from a Nix store under \${builtins.storeDir} > $out" ];
}
`;

export interface DemoResult {
  bootstrap: BootstrapResult;
  /** the exit code of the first build (0: it built) */
  buildCode: number;
  /** what the built file says */
  said?: string;
  /** the store path of the active Nix */
  nix?: string;
}

/** `given`: the user named the prefix (it must be new, or one a demo made); else it is the demo's own. */
export async function runDemo(o: { prefix: string; given: boolean; json?: boolean; say: (s: string) => void }): Promise<DemoResult> {
  const l = layout(o.prefix);
  o.say('preparing the Nix tarball (the first run generates it, ~1 min)');
  const fx = await ensureFixture({ log: o.say });
  const server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
  let bootstrap: BootstrapResult;
  try {
    const url = `${server.url.replace(/\/$/, '')}/${path.basename(fx.tarball)}`;
    o.say(`serving it at ${url}`);
    // the checksum, not the URL, names the tarball: a re-run on another port is still a no-op
    bootstrap = await runBootstrap({ prefix: o.prefix, url, sha256: fx.sha256, json: o.json, demo: o.given ? 'given' : 'own' });
  } finally {
    await server.close();
  }
  const expr = path.join(l.relonixDir, 'demo.nix');
  await writeFileAtomic(expr, DEMO_EXPR);
  o.say(`building ${expr} with: relonix run --prefix ${shQuote(o.prefix)} -- nix-build --no-out-link ${shQuote(expr)}`);
  // under --json, stdout carries events only: nix-build's output path goes to stderr
  const buildCode = await runInPrefix(l, 'nix-build', ['--no-out-link', expr], { stdout: o.json ? 'stderr' : undefined });
  if (buildCode !== 0) return { bootstrap, buildCode };
  const out = (await fs.readdir(l.storeDir)).find((n) => n.endsWith('-hello-from-relonix'));
  const said = out ? (await fs.readFile(path.join(l.storeDir, out), 'utf8')).trim() : undefined;
  return { bootstrap, buildCode, said, nix: (await activeNix(l)).nix };
}
