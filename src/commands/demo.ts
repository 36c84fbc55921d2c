import type { Command } from 'commander';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { layout } from '../prefix/layout.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { runBootstrap } from '../bootstrap/engine.ts';
import { reportBootstrap } from './bootstrap.ts';

/**
 * The demo prefix is its own, not /tmp/nix: the demo installs a Nix made from Debian's nix-bin, and
 * a later real `relonix bootstrap` into the default prefix should not find it there.
 */
export const DEMO_PREFIX = '/tmp/relonix-demo';

const DEMO_EXPR = `derivation {
  name = "hello-from-relonix";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo hello from a Nix store under \${builtins.storeDir} > $out" ];
}
`;

export function register(program: Command): void {
  program
    .command('demo')
    .description('bootstrap from a local mirror of a generated Nix tarball and build something (works offline)')
    .option('--prefix <dir>', `the prefix (default ${DEMO_PREFIX})`)
    .option('--json', 'print the bootstrap as JSON events')
    .addHelpText(
      'after',
      `
What it does: builds (once, cached under fixtures/generated) an official-layout Nix 2.8.0 tarball
from Debian's nix-bin, serves it on 127.0.0.1, runs the full \`relonix bootstrap\` from that mirror
into the prefix, then runs a trivial nix-build through \`relonix run\`. The server is stopped after.`,
    )
    .action(async (o: { prefix?: string; json?: boolean }) => {
      const prefix = o.prefix ?? DEMO_PREFIX;
      const l = layout(prefix);
      const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
      const { ensureFixture } = await import('../demo/mirror.ts');
      say('preparing the Nix tarball (the first run generates it, ~1 min)');
      const fx = await ensureFixture({ log: (s: string) => say(s) });
      const { serveDirectory } = await import('../net/serve.ts');
      const server = await serveDirectory(path.dirname(fx.tarball), { host: '127.0.0.1', port: 0 });
      try {
        const url = `${server.url.replace(/\/$/, '')}/${path.basename(fx.tarball)}`;
        say(`serving it at ${url}`);
        // the checksum, not the URL, names the tarball: a re-run on another port is still a no-op
        reportBootstrap(await runBootstrap({ prefix, url, sha256: fx.sha256, json: o.json }), !!o.json, ` --prefix ${prefix}`);
      } finally {
        await server.close();
      }
      const expr = path.join(l.relonixDir, 'demo.nix');
      await writeFileAtomic(expr, DEMO_EXPR);
      say(`building ${expr} with: relonix run --prefix ${prefix} -- nix-build --no-out-link ${expr}`);
      const { runInPrefix } = await import('../prefix/tools.ts');
      const code = await runInPrefix(l, 'nix-build', ['--no-out-link', expr]);
      if (code !== 0) {
        process.exitCode = code;
        return;
      }
      const { activeNix } = await import('../prefix/environment.ts');
      const out = (await fs.readdir(l.storeDir)).filter((n) => n.endsWith('-hello-from-relonix'));
      if (out[0]) say(`it says: ${(await fs.readFile(path.join(l.storeDir, out[0]), 'utf8')).trim()}`);
      const { nix } = await activeNix(l);
      const next: [string, string][] = [
        [`eval "$(relonix env --prefix ${prefix})"`, 'then nix-build, nix-shell, nix-env as usual'],
        [`relonix status --prefix ${prefix}`, 'what was relocated, what is left in binary data'],
        ['relonix bootstrap', 'the real thing: the official release into /tmp/nix'],
        [`chmod -R u+w ${prefix} && rm -rf ${prefix}`, 'remove the demo'],
      ];
      const w = Math.max(...next.map(([c]) => c.length)) + 2;
      process.stdout.write(
        ['', `Nix (${path.basename(nix)}) works in ${prefix}. Next:`, ...next.map(([c, why]) => `  ${c.padEnd(w)}# ${why}`), ''].join('\n'),
      );
    });
}
