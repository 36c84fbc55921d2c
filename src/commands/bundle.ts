import type { Command } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { layout } from '../prefix/layout.ts';
import { mib } from '../util/format.ts';
import { PREFIX_HELP } from './options.ts';

const HELP = `
What it makes: one executable file that runs a program of the prefix's store on any Linux host,
with no Nix, no node, no root, no namespaces and no FUSE there. The file is a POSIX sh launcher
followed by the program's whole closure as a gzip'd tar (gzip: every Linux host can read it).

When the bundle is made, every store reference in the closure (ELF interpreters and RUNPATHs,
#! lines, paths compiled into binaries, symlinks) is rewritten for a run dir exactly as long as
the store dir: /tmp/<5 characters from the closure's hash> for a 10-byte store dir such as
/tmp/nix/s. Equal lengths move no byte, so the host only unpacks and runs, natively.

Running the bundle (./FILE ARGS...):
  first run    checks the payload's sha256, then unpacks it into the run dir (a temporary dir
               beside it, renamed into place once complete) and execs the entry with ARGS
  later runs   find the run dir's marker and exec the entry at once: nothing is unpacked
  at once      concurrent first runs unpack once (the others wait); a run killed mid-way
               leaves nothing the next run trusts: it cleans up and unpacks again
  refused      a damaged payload (before anything is written), a run dir that exists with
               other content, belongs to another user or sits on a noexec mount, or that
               another user is unpacking into (never waited for): the message names the
               problem and RELONIX_RUN_DIR=DIR, any new dir of the same length
  --bundle-info  what the bundle holds (entry, closure, run dir, payload hash), unpacking nothing
The entry's stdin, stdout, stderr, signals and exit status are its own: the launcher execs it.
The launcher's own refusals exit 126 (127 when a tool is missing), lines starting "relonix bundle:".
The host needs only sh, dd or tail, tar, gzip and sha256sum: coreutils, or busybox alone
(openssl, where the host has it, checks the sha256 faster).

Installables: a store path (or a path inside one, which then names the entry; realised first,
so the prefix's Nix substitutes what its store lacks), a path that leads into the store
(./result), a Nix file or expression (built with the prefix's nix-build), or, with --file
FILE, attribute names of FILE. The closure is that of all of them; the entry is in the first.

Examples:
  relonix bundle /tmp/nix/s/<hash>-hello-2.12/bin/hello -o hello.run && ./hello.run --greeting hi
  relonix bundle --file ./default.nix myapp --entry bin/myapp -o myapp.run
  relonix bundle '(import <nixpkgs> {}).ripgrep' -o rg.run      then, on another host: ./rg.run PATTERN
  ./myapp.run --bundle-info
  RELONIX_RUN_DIR=/var/tmp/x ./myapp.run    (/tmp noexec: any new dir as long as the run dir)

Exit codes: 0 written, 1 failure (a build), 2 usage (no entry, an entry outside the closure,
a store dir too short for a run dir, -o a directory, a pipe or a device).`;

interface Opts {
  prefix?: string;
  file?: string;
  entry?: string;
  output: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('bundle')
    .description('write one executable file that runs a closure natively on any Linux host: no Nix, no node, no namespaces, no FUSE')
    .option('--prefix <dir>', PREFIX_HELP)
    .option('-f, --file <file>', 'installables that are not store paths are attributes of this Nix file')
    .option('-e, --entry <path>', "the program to run: a path inside the first installable's store path, such as bin/NAME (default: its only program)")
    .requiredOption('-o, --output <file>', 'the bundle to write (replaced atomically)')
    .option('--json', 'print the result as one JSON object')
    .option('--quiet', 'print only the result')
    .argument('<installables...>', 'store paths, paths into the store, Nix files or expressions (with --file: attribute names)')
    .addHelpText('after', HELP)
    .action(async (installables: string[], o: Opts) => {
      const { makeBundle } = await import('../bundle/index.ts');
      const log = (m: string) => (o.quiet || o.json ? undefined : process.stderr.write(`${m}\n`));
      const r = await makeBundle({ layout: layout(o.prefix), installables, file: o.file, entry: o.entry, output: o.output, version: pkg.version, log });
      for (const c of r.compressed) {
        process.stderr.write(`relonix: note: ${c.file} names ${r.storeDir} ${c.occurrences} times inside ${c.format} data, which is not rewritten\n`);
      }
      if (r.fixed) process.stderr.write(`relonix: note: RELONIX_RUN_DIR will not work with this bundle: ${r.fixed}\n`);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      const length = Buffer.byteLength(r.storeDir);
      const file = o.output.includes('/') ? o.output : `./${o.output}`;
      const lines = [
        `wrote ${o.output} (${mib(r.fileBytes)}): ${r.paths.length} store paths (${mib(r.closureBytes)}), entry ${r.entry}`,
        `run dir: ${r.runDir} (${length} bytes, as long as the store dir ${r.storeDir}${length === 10 ? '' : `, which is not the usual 10: RELONIX_RUN_DIR must be ${length} bytes too`})`,
        `payload: sha256 ${r.sha256}; ${r.files} files, ${r.references} store references rewritten`,
        `run it:  ${file} ARGS...    inspect it: ${file} --bundle-info`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
