// `relonix patchelf`: the options, output and exit codes of Debian's patchelf 0.14 for the
// interpreter and search-path operations, on the relonix ELF engine. Scripts written for patchelf
// (nixpkgs fixup hooks, install scripts) can call this instead when the host has no patchelf.
//
// argv -> operations -> output: the options become a list of operations in the order patchelf
// applies them; each file is read (only the parts the engine reaches), the operations run on it
// through the engine, and what they print is printed. Like patchelf, all options apply to every
// file; files are handled in order and the first error stops the run with exit code 1 after
// earlier files were written. Edits are written by the engine's file writer: only the changed
// bytes, in an order that keeps the file valid at every step; hard links survive, as with
// patchelf's in-place writes.
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import pkg from '../../package.json' with { type: 'json' };
import { DT, ET } from '../elf/consts.ts';
import { type EditPlan, type ElfEdits, ElfError, type ParsedElf, parseElf, planEdit, writeOutputSync, writePlanSync } from '../elf/index.ts';
import { classLayout, EI, ELFCLASS32, ELFCLASS64, ELFDATA2MSB, EV_CURRENT, isElf, MIN_EHDR_SIZE, readEhdr } from '../elf/layout.ts';
import { dynString, neededLibraries, searchPath } from '../elf/reader.ts';
import { shrinkSearchPath } from '../elf/shrink.ts';
import { PartialFile } from '../elf/source.ts';

const VERSION = `patchelf 0.14.3 (relonix ${pkg.version})`;

const HELP = `syntax: patchelf
  [--set-interpreter FILENAME]
  [--page-size SIZE]
  [--print-interpreter]
  [--print-soname]\t\tPrints 'DT_SONAME' entry of .dynamic section. Raises an error if DT_SONAME doesn't exist
  [--set-soname SONAME]\t\tSets 'DT_SONAME' entry to SONAME.
  [--set-rpath RPATH]
  [--add-rpath RPATH]
  [--remove-rpath]
  [--shrink-rpath]
  [--allowed-rpath-prefixes PREFIXES]\t\tWith '--shrink-rpath', reject rpath entries not starting with the allowed prefix
  [--print-rpath]
  [--force-rpath]
  [--add-needed LIBRARY]
  [--remove-needed LIBRARY]
  [--replace-needed LIBRARY NEW_LIBRARY]
  [--print-needed]
  [--no-default-lib]
  [--clear-symbol-version SYMBOL]
  [--output FILE]
  [--debug]
  [--version]
  FILENAME...
`;

/** Operations patchelf has that relonix does not implement; refused up front, never ignored. */
const UNSUPPORTED: Record<string, number> = {
  '--set-soname': 1,
  '--add-needed': 1,
  '--remove-needed': 1,
  '--replace-needed': 2,
  '--no-default-lib': 0,
  '--clear-symbol-version': 1,
};

type Operation =
  | { op: 'print-interpreter' }
  | { op: 'print-soname' }
  | { op: 'set-interpreter'; value: string }
  | { op: 'print-rpath' }
  | { op: 'rpath'; how: 'set' | 'add' | 'remove' | 'shrink'; value: string; allowed: string[]; force: boolean }
  | { op: 'print-needed' };

interface Command {
  /** In the order patchelf applies them, whatever the order on the command line. */
  operations: Operation[];
  pageSize?: number;
  output?: string;
  files: string[];
}

/**
 * What patchelf would print after `patchelf: `, in its words (the output is compared with
 * Debian's patchelf byte for byte, so it carries no fix line); runPatchelf prints it and exits 1.
 */
class PatchelfError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'PatchelfError';
  }
}

const usage = (message: string, cause?: unknown): PatchelfError => new PatchelfError(message, cause);

/** patchelf reads `@FILE` arguments from FILE, verbatim. */
function resolveArgument(a: string): string {
  return a.startsWith('@') ? readFileSync(a.slice(1), 'latin1') : a;
}

/** C's atoi: leading blanks, optional sign, digits; anything else ends the number. */
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? parseInt(m[1]!, 10) : 0;
}

interface Flags {
  printInterpreter?: boolean;
  printSoname?: boolean;
  printRpath?: boolean;
  printNeeded?: boolean;
  interpreter?: string;
  set?: boolean;
  add?: boolean;
  remove?: boolean;
  shrink?: boolean;
  rpath?: string;
  allowed: string[];
  force?: boolean;
}

/** The options, or the exit code when an option (--help, --version) ends the run by itself. */
function parseArgs(args: string[]): Command | number {
  const f: Flags = { allowed: [] };
  const cmd: Command = { operations: [], files: [] };
  const value = (i: number): string => {
    const v = args[i];
    if (v === undefined) throw usage('missing argument');
    return v;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    switch (a) {
      case '--set-interpreter':
      case '--interpreter':
        f.interpreter = resolveArgument(value(++i));
        break;
      case '--page-size':
        cmd.pageSize = atoi(value(++i));
        if (cmd.pageSize <= 0) throw usage('invalid argument to --page-size');
        break;
      case '--print-interpreter':
        f.printInterpreter = true;
        break;
      case '--print-soname':
        f.printSoname = true;
        break;
      case '--remove-rpath':
        f.remove = true;
        break;
      case '--shrink-rpath':
        f.shrink = true;
        break;
      case '--allowed-rpath-prefixes':
        f.allowed = value(++i).split(':').filter(Boolean);
        break;
      case '--set-rpath':
        f.set = true;
        f.rpath = resolveArgument(value(++i));
        break;
      case '--add-rpath':
        f.add = true;
        f.rpath = resolveArgument(value(++i));
        break;
      case '--print-rpath':
        f.printRpath = true;
        break;
      case '--force-rpath':
        f.force = true;
        break;
      case '--print-needed':
        f.printNeeded = true;
        break;
      case '--debug':
        break;
      case '--output':
        cmd.output = resolveArgument(value(++i));
        break;
      case '--help':
      case '-h':
        process.stderr.write(HELP);
        return 0;
      case '--version':
        process.stdout.write(`${VERSION}\n`);
        return 0;
      default:
        if (a in UNSUPPORTED) {
          for (let k = 0; k < UNSUPPORTED[a]!; k++) value(++i);
          throw usage(`${a} is not supported by relonix patchelf (use Debian's patchelf for it)`);
        }
        cmd.files.push(a);
    }
  }
  cmd.operations = operations(f);
  if (cmd.files.length === 0) throw usage('missing filename');
  if (cmd.output !== undefined && cmd.files.length !== 1) throw usage('--output option only allowed with single input file');
  return cmd;
}

/** patchelf's order of application, and its precedence among the search-path operations. */
function operations(f: Flags): Operation[] {
  const ops: Operation[] = [];
  if (f.printInterpreter) ops.push({ op: 'print-interpreter' });
  if (f.printSoname) ops.push({ op: 'print-soname' });
  if (f.interpreter !== undefined) ops.push({ op: 'set-interpreter', value: f.interpreter });
  if (f.printRpath) ops.push({ op: 'print-rpath' });
  const how = f.shrink ? 'shrink' : f.remove ? 'remove' : f.set ? 'set' : f.add ? 'add' : undefined;
  if (how) ops.push({ op: 'rpath', how, value: f.rpath ?? '', allowed: f.allowed, force: !!f.force });
  if (f.printNeeded) ops.push({ op: 'print-needed' });
  return ops;
}

function sysMessage(e: NodeJS.ErrnoException): string {
  const text: Record<string, string> = {
    ENOENT: 'No such file or directory',
    EACCES: 'Permission denied',
    EISDIR: 'Is a directory',
    ENOTDIR: 'Not a directory',
    ELOOP: 'Too many levels of symbolic links',
    EPERM: 'Operation not permitted',
    EROFS: 'Read-only file system',
    ENOSPC: 'No space left on device',
    ETXTBSY: 'Text file busy',
    EIO: 'Input/output error',
  };
  return text[e.code ?? ''] ?? e.message;
}

/** An error of a system call, worded as patchelf words it: `what: strerror`. */
function sysError(what: string, err: unknown): PatchelfError {
  return new PatchelfError(`${what}: ${sysMessage(err as NodeJS.ErrnoException)}`, err);
}

/** patchelf's readFile: stat, then open, each failure worded as it words it. */
function openInput(file: string): PartialFile {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw sysError(`getting info about '${file}'`, e);
  }
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw sysError(`opening '${file}'`, e);
  }
  try {
    return new PartialFile(fd, size);
  } catch (e) {
    closeSync(fd);
    throw sysError(`reading '${file}'`, e);
  }
}

/** The header checks patchelf makes before anything else, with its wording and in its order. */
function precheck(buf: Buffer): void {
  if (buf.length < MIN_EHDR_SIZE) throw usage('missing ELF header');
  if (!isElf(buf)) throw usage('not an ELF executable');
  if (buf[EI.VERSION] !== EV_CURRENT) throw usage('unsupported ELF version');
  if (buf[EI.CLASS] !== ELFCLASS32 && buf[EI.CLASS] !== ELFCLASS64) throw usage('ELF executable is not 32 or 64 bit');
  // patchelf reads anything but big-endian as little-endian.
  const l = classLayout(buf[EI.CLASS] === ELFCLASS64, buf[EI.DATA] !== ELFDATA2MSB);
  if (buf.length < l.ehdrSize) throw usage('missing ELF header');
  const { type, phoff, phnum, phentsize, shoff, shnum, shentsize } = readEhdr(l, l.io(buf));
  if (type !== ET.EXEC && type !== ET.DYN) throw usage('wrong ELF type');
  if (phoff + phnum * phentsize > buf.length) throw usage('program header table out of bounds');
  if (shnum === 0) throw usage('no section headers. The input file is probably a statically linked, self-decompressing binary');
  if (shoff + shnum * shentsize > buf.length) throw usage('section header table out of bounds');
  if (phentsize !== l.phdr.size) throw usage('program headers have wrong size');
}

const NO_INTERP = "cannot find section '.interp'. The input file is most likely statically linked";
const NO_DYNAMIC = "cannot find section '.dynamic'. The input file is most likely statically linked";

/**
 * Whether the file holds a dynamic table to work on. A separate debug file keeps the table's
 * place but not its bytes: patchelf then does nothing, silently; a file with none is refused.
 */
function hasDynamic(e: ParsedElf): boolean {
  if (e.dynElsewhere) return false;
  if (e.dynIndex < 0) throw usage(NO_DYNAMIC);
  return true;
}

/** Run the operations on one parsed file: what they print goes to `out`; the edits they ask for are returned. */
function apply(cmd: Command, e: ParsedElf, out: string[]): ElfEdits {
  const edits: ElfEdits = {};
  if (cmd.pageSize !== undefined) edits.pageSize = cmd.pageSize;
  for (const o of cmd.operations) {
    switch (o.op) {
      case 'print-interpreter':
        if (e.interp === undefined) throw usage(NO_INTERP);
        out.push(`${e.interp}\n`);
        break;
      case 'print-soname': {
        // patchelf only looks for a soname in shared objects (ET_DYN); for others it prints nothing.
        const soname = e.type === ET.DYN && hasDynamic(e) ? e.dyn.find((d) => d.tag === DT.SONAME) : undefined;
        if (soname) out.push(`${dynString(e, soname.val)}\n`);
        break;
      }
      case 'set-interpreter':
        if (e.interp === undefined) throw usage(NO_INTERP);
        edits.interpreter = o.value;
        break;
      case 'print-rpath':
        if (hasDynamic(e)) out.push(`${searchPath(e) ?? ''}\n`);
        break;
      case 'rpath':
        if (hasDynamic(e)) Object.assign(edits, rpathEdit(e, o));
        break;
      case 'print-needed':
        if (hasDynamic(e)) for (const lib of neededLibraries(e)) out.push(`${lib}\n`);
        break;
    }
  }
  return edits;
}

function rpathEdit(e: ParsedElf, o: Extract<Operation, { op: 'rpath' }>): ElfEdits {
  const cur = searchPath(e);
  if (o.how === 'remove') return cur === undefined ? {} : { rpath: null };
  // Like patchelf, a shrink also converts DT_RPATH to DT_RUNPATH unless --force-rpath.
  if (o.how === 'shrink') return cur === undefined ? {} : { rpath: shrinkSearchPath(e, cur, o.allowed), forceRpath: o.force };
  return { rpath: o.how === 'add' && cur ? `${cur}:${o.value}` : o.value, forceRpath: o.force };
}

/** The engine's own errors are the user's file being unusable for the edit: a usage error. */
function engine<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof ElfError) throw usage(err.problem, err);
    throw err;
  }
}

function processFile(cmd: Command, file: string, out: string[]): void {
  const src = openInput(file);
  try {
    // --output copies the whole file, so it needs every byte.
    if (cmd.output !== undefined) src.readAll();
    precheck(src.buf);
    const e = engine(() => parseElf(src.buf, file, src.ensure));
    const edits = apply(cmd, e, out);
    // With --output the input buffer is kept intact; otherwise it receives the edit directly.
    let plan: EditPlan | null = engine(() => planEdit(e, edits, cmd.output === undefined));
    if (cmd.output === undefined && plan && plan.pre !== src.buf) {
      // The edit rewrites the whole file (a segment relonix added is rebuilt, or the contents shift): read it all.
      src.readAll();
      plan = engine(() => planEdit(parseElf(src.buf, file), edits, false));
    }
    flush(out);
    write(cmd, file, src, plan);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).syscall === 'read') throw sysError(`reading '${file}'`, err);
    throw err;
  } finally {
    src.close();
  }
}

function write(cmd: Command, file: string, src: PartialFile, plan: EditPlan | null): void {
  try {
    if (cmd.output !== undefined) writeOutputSync(cmd.output, plan ? plan.pre.subarray(0, plan.base) : src.buf, statSync(file).mode & 0o7777);
    else if (plan) writePlanSync(file, plan, src.buf, src.complete);
  } catch (err) {
    const call = (err as NodeJS.ErrnoException).syscall;
    throw sysError(call === 'open' || call === 'stat' ? 'open' : 'write', err);
  }
}

function flush(out: string[]): void {
  if (out.length) {
    process.stdout.write(out.join(''));
    out.length = 0;
  }
}

/** The one place the command reports an error: patchelf's `patchelf: message`, and its exit code 1 for every kind. */
export async function runPatchelf(args: string[]): Promise<number> {
  if (args.length === 0) {
    process.stderr.write(HELP);
    return 1;
  }
  const out: string[] = [];
  try {
    const cmd = parseArgs(args);
    if (typeof cmd === 'number') return cmd;
    for (const f of cmd.files) processFile(cmd, f, out);
    return 0;
  } catch (err) {
    flush(out);
    process.stderr.write(`patchelf: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}
