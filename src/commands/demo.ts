import path from 'node:path';
import type { Command } from 'commander';
import { emit } from '../util/emit.ts';
import { shQuote } from '../util/shell.ts';
import { reportBootstrap } from './bootstrap.ts';

/**
 * The demo prefix is its own, not /tmp/nix: the demo installs a Nix made from Debian's nix-bin, and
 * a later real `relonix bootstrap` into the default prefix should not find it there. Like /tmp/nix
 * it is 8 bytes, so its store dir is /tmp/rxd/s, as long as /nix/store, with a translator.
 */
const DEMO_PREFIX = '/tmp/rxd';

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
into the prefix, then runs a trivial nix-build through \`relonix run\`. The server is stopped after.
It bootstraps only a new directory or a prefix an earlier demo made, never a prefix of yours;
\`relonix uninstall --prefix DIR\` removes it. With --json, stdout has JSON events only.`,
    )
    .action(async (o: { prefix?: string; json?: boolean }) => {
      const prefix = o.prefix ?? DEMO_PREFIX;
      const json = !!o.json;
      const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
      // loaded on use, like every command's layer: start-up compiles only what argv needs
      const { runDemo } = await import('../demo/tour.ts');
      const r = await runDemo({ prefix, given: o.prefix !== undefined, json, say });
      reportBootstrap(r.bootstrap, json, ` --prefix ${shQuote(prefix)}`);
      if (r.buildCode !== 0) {
        process.exitCode = r.buildCode;
        return;
      }
      const p = shQuote(prefix);
      const next: [string, string][] = [
        [`eval "$(relonix env --prefix ${p})"`, 'then nix-build, nix-shell, nix-env as usual'],
        [`relonix status --prefix ${p}`, 'what was relocated, what is left in binary data'],
        ['relonix bootstrap', 'the real thing: the official release into /tmp/nix'],
        [`relonix uninstall --prefix ${p}`, 'remove the demo'],
      ];
      if (json) {
        emit({ event: 'demo', prefix, nix: r.nix, said: r.said, next: next.map(([command, why]) => ({ command, why })) });
        return;
      }
      if (r.said) say(`it says: ${r.said}`);
      const w = Math.max(...next.map(([c]) => c.length)) + 2;
      process.stdout.write(
        ['', `Nix (${path.basename(r.nix!)}) works in ${prefix}. Next:`, ...next.map(([c, why]) => `  ${c.padEnd(w)}# ${why}`), ''].join('\n'),
      );
    });
}
