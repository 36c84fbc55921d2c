// The program. Nothing is imported here that `relonix --version` does not need: the commands, the CLI
// framework, and what reporting an error takes are loaded once argv asks for more (start-up is
// what every call waits for, and in the bundle each module loaded is a file read and compiled).
import type { Command, CommanderError } from 'commander';
import pkg from '../package.json' with { type: 'json' };
import type { ErrorKind } from './util/errors.ts';

/** The exit code of each kind of error: the one place they are decided (listed in --help, run's 126 and 127 in its own). */
export const EXIT_CODES: Record<ErrorKind, number> = {
  failure: 1,
  usage: 2,
  integrity: 3,
  busy: 4,
  preflight: 5,
  network: 6,
  unrunnable: 126,
  missing: 127,
};

interface CommandModule {
  register(program: Command): void;
}

// Each command lives in its own module exporting `register(program)`; what it does is one call into a
// layer, which the command loads when it runs. Every module is loaded only when argv reaches it, so a
// start compiles and initialises only what the command needs (in the bundle, each is a chunk of its own).
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  bootstrap: () => import('./commands/bootstrap.ts'),
  env: () => import('./commands/env.ts'),
  run: () => import('./commands/run.ts'),
  status: () => import('./commands/status.ts'),
  doctor: () => import('./commands/doctor.ts'),
  publish: () => import('./commands/publish.ts'),
  keygen: () => import('./commands/keygen.ts'),
  cache: () => import('./commands/cache.ts'),
  build: () => import('./commands/build.ts'),
  instantiate: () => import('./commands/instantiate.ts'),
  builder: () => import('./commands/builder.ts'),
  translate: () => import('./commands/translate.ts'),
  translator: () => import('./commands/translator.ts'),
  bundle: () => import('./commands/bundle.ts'),
  uninstall: () => import('./commands/uninstall.ts'),
  demo: () => import('./commands/demo.ts'),
};

/** The commands argv can reach, in --help's order: the one it names, else all (for help and errors). */
function reachable(argv: string[]): Promise<CommandModule[]> {
  const first = argv[2] ?? '';
  const names = Object.hasOwn(COMMANDS, first) ? [first] : Object.keys(COMMANDS);
  return Promise.all(names.map((n) => COMMANDS[n]!()));
}

/** `relonix --version`, as the CLI framework would answer it, without loading the framework. */
function asksVersion(argv: string[]): boolean {
  return argv[2] === '--version' || argv[2] === '-V';
}

const EPILOG = `
Prefix: --prefix DIR, else $RELONIX_PREFIX, else /tmp/nix. Under it: the store dir (s/ where
<prefix>/s is as long as /nix/store, as /tmp/nix/s, else store/), var/nix/, var/log/nix/,
etc/nix/nix.conf and etc/profile.d/relonix.sh. With a store dir of 10 bytes, Nix commands get
cache.nixos.org's binaries translated on demand (relonix translator --help).

Exit codes: 0 ok, 1 failure, 2 usage error, 3 integrity (checksum, hash or signature) refused,
4 prefix busy (another relonix holds its lock), 5 preflight refused (the prefix's path or
permissions, space, noexec, machine; or relonix doctor found a problem), 6 network failure after
retries, 128+N stopped by signal N (Ctrl-C: 130), saying what was kept. A server's 401/403
(credentials refused) and 405/501 (no uploads taken) exit 2, its 404 (no such object) 1; 5xx and
broken connections are retried. With --json, errors are JSON events too.

Start with:  relonix doctor   then:  relonix bootstrap   then:  eval "$(relonix env)"`;

async function buildProgram(): Promise<Command> {
  const { Command } = await import('commander');
  const program = new Command('relonix')
    .description('A working Nix in a writable prefix, on hosts with no root and no namespaces.')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EPILOG)
    // options after a command's name are that command's (`relonix run nix --version`, translate's
    // NIX-INSTANTIATE-ARGS): set here, for whichever commands argv registers
    .enablePositionalOptions()
    .exitOverride();
  // patchelf has its own argument grammar; it is listed here for --help and dispatched in main()
  program.command('patchelf').description('patchelf-compatible ELF editor (relonix patchelf --help)').allowUnknownOption().helpOption(false);
  return program;
}

/**
 * A stream relonix cannot write to: a closed pipe (`relonix env | head`) is the reader's choice and
 * ends relonix quietly; anything else (`relonix env > /dev/full`) is one line on stderr and exit 1.
 */
function onOutputError(name: 'stdout' | 'stderr') {
  return async (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    if (name === 'stdout') {
      const { errnoWords } = await import('./util/errors.ts');
      process.stderr.write(`relonix: error: cannot write to stdout: ${errnoWords(e)}; send the output somewhere it fits\n`);
    }
    process.exit(EXIT_CODES.failure);
  };
}

export async function main(argv: string[]): Promise<void> {
  process.stdout.on('error', onOutputError('stdout'));
  process.stderr.on('error', onOutputError('stderr'));
  if (asksVersion(argv)) {
    process.stdout.write(`${pkg.version}\n`);
    return;
  }
  const { exitOnSignals, inFlightAbandoned } = await import('./util/signals.ts');
  exitOnSignals(wantsJson(argv), (code) => process.exit(code));
  try {
    if (argv[2] === 'patchelf') {
      const { runPatchelf } = await import('./commands/patchelf.ts');
      process.exitCode = await runPatchelf(argv.slice(3));
      return;
    }
    const program = await buildProgram();
    for (const c of await reachable(argv)) c.register(program);
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = await report(e, wantsJson(argv));
  } finally {
    // what a command left in flight must not hold the process open once its result is said
    if (inFlightAbandoned()) setImmediate(() => process.exit());
  }
}

/** `--json` before any `--`: the command speaks JSON events, so its error is one too. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  const at = argv.indexOf('--json');
  return at !== -1 && (end === -1 || at < end);
}

/** An error of the CLI framework's, which has printed it already; checked without loading it. */
function isCommanderError(e: unknown): e is CommanderError {
  return (
    e instanceof Error &&
    typeof (e as Partial<CommanderError>).exitCode === 'number' &&
    typeof (e as Partial<CommanderError>).code === 'string' &&
    (e as Partial<CommanderError>).code!.startsWith('commander.')
  );
}

async function report(e: unknown, json: boolean): Promise<number> {
  const [{ emit }, { causeChain, errorMessage, fromSystemError, RelonixError }, { redactText }, { isDamagedPart, packageDamaged }] = await Promise.all([
    import('./util/emit.ts'),
    import('./util/errors.ts'),
    import('./util/redact.ts'),
    import('./util/self.ts'),
  ]);
  if (isCommanderError(e)) {
    // commander has printed the error and the pointer to --help; scripts get the event too
    if (e.exitCode === 0) return 0;
    if (json) emit({ event: 'error', message: e.message.replace(/^error: /, ''), kind: 'usage', exitCode: EXIT_CODES.usage });
    return EXIT_CODES.usage;
  }
  const known = e instanceof RelonixError ? e : isDamagedPart(e) ? packageDamaged(e) : fromSystemError(e);
  const code = EXIT_CODES[known?.kind ?? 'failure'];
  // whichever layer made the message, a URL's credentials never reach the terminal or a log
  const message = redactText(errorMessage(known ?? e));
  const hint = known?.hint === undefined ? undefined : redactText(known.hint);
  if (json) emit({ event: 'error', message, hint, kind: known?.kind ?? 'failure', exitCode: code });
  process.stderr.write(`relonix: error: ${message}\n`);
  if (hint) process.stderr.write(`  fix: ${hint}\n`);
  if (process.env.RELONIX_DEBUG) {
    for (const c of causeChain(e)) process.stderr.write(`${redactText(c instanceof Error ? (c.stack ?? c.message) : String(c))}\n`);
  } else if (!known) {
    process.stderr.write('  (set RELONIX_DEBUG=1 for the cause chain with stack traces)\n');
  }
  return code;
}
