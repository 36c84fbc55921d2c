import type { Command } from 'commander';
import { layout } from '../prefix/layout.ts';
import type { TranslatorFiles } from '../translator/config.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';
import { badEnvironmentValue, PREFIX_HELP } from './options.ts';

const HELP = `
The translator serves upstream's binaries (cache.nixos.org unless bootstrap was told otherwise)
to the prefix's Nix, rewritten for its store dir and signed with the prefix's own key: nix.conf
names it as a substituter at http://127.0.0.1:PORT/ID. The bin/ wrappers (first on PATH in
\`relonix env\`, \`relonix run\` and the profile scripts) start it when a Nix command runs, and it
stops once no command has needed it for a while (RELONIX_TRANSLATOR_IDLE seconds, default 120).
Nothing here is needed in everyday use: a command that waits on translations for more than a few
seconds prints how far they are, and \`relonix status\` shows what was done.

Examples:
  relonix translator start        # start it now (prints its URL)
  relonix translator stop`;

/** Seconds the server waits with no command running before it stops. */
function idleMs(): number {
  const s = Number(process.env.RELONIX_TRANSLATOR_IDLE ?? 120);
  if (!Number.isFinite(s) || s < 0)
    throw badEnvironmentValue('RELONIX_TRANSLATOR_IDLE', process.env.RELONIX_TRANSLATOR_IDLE ?? '', 'a number of seconds', '120');
  return s * 1000;
}

export function register(program: Command): void {
  const t = program.command('translator').description("the prefix's on-demand translator of upstream's binaries: start, stop").addHelpText('after', HELP);
  t.command('start')
    .description('start the translator unless it runs, and print its substituter URL')
    .option('--prefix <dir>', PREFIX_HELP)
    .option('--quiet', 'print nothing when it runs (the bin/ wrappers use this)')
    .action(async (o: { prefix?: string; quiet?: boolean }) => {
      const l = layout(o.prefix);
      const { ensureTranslator } = await import('../translator/client.ts');
      const url = await ensureTranslator(l);
      if (!url) {
        throw noTranslator(l.prefix);
      }
      if (!o.quiet) process.stdout.write(`${url}\n`);
    });
  t.command('stop')
    .description('stop the translator (a command that needs it starts it again)')
    .option('--prefix <dir>', PREFIX_HELP)
    .action(async (o: { prefix?: string }) => {
      const { stopTranslator } = await import('../translator/client.ts');
      const stopped = await stopTranslator(layout(o.prefix));
      process.stdout.write(stopped ? 'stopped\n' : 'not running\n');
    });
  // what the wrappers' start runs, detached: one JSON line when listening, then it serves
  t.command('serve', { hidden: true })
    .option('--prefix <dir>', PREFIX_HELP)
    .option('--listen-fd <fd>', 'serve on this inherited socket, bound by the quick start, which waits for nothing')
    .action(async (o: { prefix?: string; listenFd?: string }) => {
      const l = layout(o.prefix);
      const [{ runServer }, { translatorUnavailable }, { translatorFiles }] = await Promise.all([
        import('../translator/server.ts'),
        import('../translator/client.ts'),
        import('../translator/config.ts'),
      ]);
      const f = translatorFiles(l);
      const listenFd = o.listenFd === undefined ? undefined : Number(o.listenFd);
      if (listenFd !== undefined && !(Number.isInteger(listenFd) && listenFd >= 3)) throw badListenFd(o.listenFd!);
      process.stdout.on('error', () => undefined);
      let failed: RelonixError | undefined;
      try {
        await runServer(l, {
          idleMs: idleMs(),
          ...(listenFd === undefined ? {} : { listenFd }),
          ready: (r) => {
            process.stdout.write(`${JSON.stringify(r)}\n`);
            process.stdout.end();
            if ('error' in r) failed = translatorUnavailable(l, r.error, r.fix);
          },
          log: (s) => process.stderr.write(`${new Date().toISOString()} ${s}\n`),
        });
      } catch (e) {
        failed = translatorUnavailable(l, errorMessage(e), e instanceof RelonixError && e.hint ? e.hint : `see ${f.log}`);
        throw e;
      } finally {
        // started by the quick start, nobody waits for the ready line: the commands hear it in their leases
        if (failed && listenFd !== undefined) await tellUnavailable(f, failed);
      }
    });
}

/** Says to every command holding a lease why the server it was started for cannot run. */
async function tellUnavailable(f: TranslatorFiles, e: RelonixError): Promise<void> {
  const { tellClients } = await import('../translator/notes.ts');
  await tellClients(f, `relonix: error: ${e.message}\n  fix: ${e.hint}\n`).catch(() => undefined);
}

/** --listen-fd that names no descriptor a socket could have been handed down on. */
export function badListenFd(v: string): RelonixError {
  return new RelonixError(`--listen-fd ${JSON.stringify(v)} is not a descriptor number of 3 or more`, {
    kind: 'usage',
    hint: 'leave serve to the bin/ wrappers and relonix translator start',
  });
}

/** relonix translator start in a prefix that has none (another store dir length, or --no-upstream). */
export function noTranslator(prefix: string): RelonixError {
  return new RelonixError(`${prefix} has no translator`, {
    kind: 'usage',
    hint: 'relonix status says why (a store dir not as long as /nix/store, or --no-upstream)',
  });
}
