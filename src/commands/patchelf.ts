// `relonix patchelf`: the options, output and exit codes of Debian's patchelf 0.14 for the
// interpreter and search-path operations, on the relonix ELF engine. Scripts written for patchelf
// (nixpkgs fixup hooks, install scripts) can call this instead when the host has no patchelf.
//
// Like patchelf, all options apply to every file; files are handled in order and the first error
// stops the run with exit code 1 after earlier files were written. Each file is read, checked and
// edited in memory, then only the changed bytes are written, in an order that keeps the file valid
// at every step (writePlanSync); hard links survive, as with patchelf's in-place writes.
import { readFileSync, statSync, openSync, readSync, closeSync, writeFileSync, chmodSync } from 'node:fs';
import pkg from '../../package.json' with { type: 'json' };
import { DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME } from '../elf/consts.ts';
import { ElfError, parseElf, planEdit, writeBackSync, writePlanSync, type EditPlan, type ElfEdits, type ParsedElf } from '../elf/index.ts';
import { Io, dynString } from '../elf/reader.ts';

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
  '--set-soname': 1, '--add-needed': 1, '--remove-needed': 1, '--replace-needed': 2, '--no-default-lib': 0, '--clear-symbol-version': 1,
};

class Fail extends Error {}

interface Options {
  interpreter?: string;
  pageSize?: number;
  printInterpreter: boolean;
  printSoname: boolean;
  printRpath: boolean;
  printNeeded: boolean;
  rpathOp?: 'set' | 'add' | 'remove' | 'shrink';
  newRpath?: string;
  allowedPrefixes: string[];
  forceRpath: boolean;
  output?: string;
  files: string[];
}

/** patchelf reads `@FILE` arguments from FILE, verbatim. */
function resolveArgument(a: string): string {
  return a.startsWith('@') ? readFileSync(a.slice(1), 'latin1') : a;
}

/** C's atoi: leading blanks, optional sign, digits; anything else ends the number. */
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? parseInt(m[1], 10) : 0;
}

function parseArgs(args: string[]): Options | number {
  const o: Options = { printInterpreter: false, printSoname: false, printRpath: false, printNeeded: false, allowedPrefixes: [], forceRpath: false, files: [] };
  let setR = false;
  let addR = false;
  let removeR = false;
  let shrinkR = false;
  const value = (i: number): string => {
    if (i >= args.length) throw new Fail('missing argument');
    return args[i];
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '--set-interpreter':
      case '--interpreter':
        o.interpreter = resolveArgument(value(++i));
        break;
      case '--page-size':
        o.pageSize = atoi(value(++i));
        if (o.pageSize <= 0) throw new Fail('invalid argument to --page-size');
        break;
      case '--print-interpreter': o.printInterpreter = true; break;
      case '--print-soname': o.printSoname = true; break;
      case '--remove-rpath': removeR = true; break;
      case '--shrink-rpath': shrinkR = true; break;
      case '--allowed-rpath-prefixes':
        o.allowedPrefixes = value(++i).split(':').filter(Boolean);
        break;
      case '--set-rpath':
        setR = true;
        o.newRpath = resolveArgument(value(++i));
        break;
      case '--add-rpath':
        addR = true;
        o.newRpath = resolveArgument(value(++i));
        break;
      case '--print-rpath': o.printRpath = true; break;
      case '--force-rpath': o.forceRpath = true; break;
      case '--print-needed': o.printNeeded = true; break;
      case '--debug': break;
      case '--output':
        o.output = resolveArgument(value(++i));
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
          for (let k = 0; k < UNSUPPORTED[a]; k++) value(++i);
          throw new Fail(`${a} is not supported by relonix patchelf (use Debian's patchelf for it)`);
        }
        o.files.push(a);
    }
  }
  // patchelf's precedence among the search-path operations.
  o.rpathOp = shrinkR ? 'shrink' : removeR ? 'remove' : setR ? 'set' : addR ? 'add' : undefined;
  if (o.files.length === 0) throw new Fail('missing filename');
  if (o.output !== undefined && o.files.length !== 1) throw new Fail('--output option only allowed with single input file');
  return o;
}

function sysMessage(e: NodeJS.ErrnoException): string {
  const text: Record<string, string> = {
    ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory', ENOTDIR: 'Not a directory',
    ELOOP: 'Too many levels of symbolic links', EPERM: 'Operation not permitted', EROFS: 'Read-only file system', ENOSPC: 'No space left on device',
  };
  return text[e.code ?? ''] ?? e.message;
}

/**
 * patchelf's readFile: stat, open, read, each failure worded as it words it. With `sparse`, only
 * the parts the engine reads are filled in (headers, header tables, the dynamic table and its
 * strings, the interpreter): reading every byte of hundreds of binaries would dominate a bulk run.
 * Untouched parts stay zero and are never written back; whatever looks odd is simply read whole.
 */
function readInput(file: string, sparse: boolean): Buffer {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new Fail(`getting info about '${file}': ${sysMessage(e as NodeJS.ErrnoException)}`);
  }
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new Fail(`opening '${file}': ${sysMessage(e as NodeJS.ErrnoException)}`);
  }
  try {
    const buf = Buffer.alloc(size);
    const fill = (off: number, len: number): void => {
      const end = Math.min(size, off + len);
      for (let at = Math.max(0, off); at < end; ) {
        const n = readSync(fd, buf, at, end - at, at);
        if (n <= 0) throw new Fail(`reading '${file}': Input/output error`);
        at += n;
      }
    };
    const HEAD = 64 << 10;
    if (!sparse || size <= HEAD * 2 || !fillSparse(buf, fill, HEAD)) fill(0, size);
    return buf;
  } catch (e) {
    if (e instanceof Fail) throw e;
    throw new Fail(`reading '${file}': ${sysMessage(e as NodeJS.ErrnoException)}`);
  } finally {
    closeSync(fd);
  }
}

/** Fill what parseElf and the writer look at; false when the layout is unusual (then read all). */
function fillSparse(buf: Buffer, fill: (off: number, len: number) => void, head: number): boolean {
  fill(0, head);
  if (buf.readUInt32BE(0) !== 0x7f454c46 || (buf[4] !== 1 && buf[4] !== 2) || (buf[5] !== 1 && buf[5] !== 2)) return false;
  const is64 = buf[4] === 2;
  const le = buf[5] === 1;
  const io = new Io(buf, is64, le);
  const phoff = io.word(is64 ? 32 : 28);
  const shoff = io.word(is64 ? 40 : 32);
  const phent = io.u16(is64 ? 54 : 42);
  const phnum = io.u16(is64 ? 56 : 44);
  const shent = io.u16(is64 ? 58 : 46);
  const shnum = io.u16(is64 ? 60 : 48);
  const limit = buf.length;
  if (phent !== (is64 ? 56 : 32) || shnum === 0 || phoff + phnum * phent > limit || shoff + shnum * shent > limit) return false;
  fill(phoff, phnum * phent);
  fill(shoff, shnum * shent);
  const loads: Array<[number, number, number]> = [];
  let dyn: [number, number] | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phent;
    const type = io.u32(o);
    const off = is64 ? io.u64(o + 8) : io.u32(o + 4);
    const vaddr = is64 ? io.u64(o + 16) : io.u32(o + 8);
    const filesz = is64 ? io.u64(o + 32) : io.u32(o + 16);
    if (off + filesz > limit) return false;
    if (type === 1) loads.push([vaddr, off, filesz]);
    else if (type === 2) dyn = [off, filesz];
    else if (type === 3) fill(off, filesz);
  }
  if (!dyn) return true;
  fill(dyn[0], dyn[1]);
  const ent = is64 ? 16 : 8;
  let strtab = -1;
  let strsz = -1;
  for (let at = dyn[0]; at + ent <= dyn[0] + dyn[1]; at += ent) {
    const tag = io.word(at);
    if (tag === 0) break;
    if (tag === 5) strtab = io.word(at + ent / 2);
    else if (tag === 10) strsz = io.word(at + ent / 2);
  }
  if (strtab < 0) return true;
  const home = loads.find(([v, , sz]) => strtab >= v && strtab < v + sz);
  if (!home || strsz <= 0) return false;
  fill(strtab - home[0] + home[1], strsz);
  return true;
}

/** The header checks patchelf makes before anything else, with its wording and in its order. */
function precheck(buf: Buffer): void {
  if (buf.length < 52) throw new Fail('missing ELF header');
  if (buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) throw new Fail('not an ELF executable');
  if (buf[6] !== 1) throw new Fail('unsupported ELF version');
  if (buf[4] !== 1 && buf[4] !== 2) throw new Fail('ELF executable is not 32 or 64 bit');
  const is64 = buf[4] === 2;
  if (buf.length < (is64 ? 64 : 52)) throw new Fail('missing ELF header');
  const le = buf[5] !== 2;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u16 = (o: number): number => dv.getUint16(o, le);
  const word = (o: number): number => (is64 ? Number(dv.getBigUint64(o, le)) : dv.getUint32(o, le));
  const type = u16(16);
  if (type !== 2 && type !== 3) throw new Fail('wrong ELF type');
  const phoff = word(is64 ? 32 : 28);
  const shoff = word(is64 ? 40 : 32);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  const shentsize = u16(is64 ? 58 : 46);
  const shnum = u16(is64 ? 60 : 48);
  if (phoff + phnum * phentsize > buf.length) throw new Fail('program header table out of bounds');
  if (shnum === 0) throw new Fail('no section headers. The input file is probably a statically linked, self-decompressing binary');
  if (shoff + shnum * shentsize > buf.length) throw new Fail('section header table out of bounds');
  if (phentsize !== (is64 ? 56 : 32)) throw new Fail('program headers have wrong size');
}

const NO_INTERP = "cannot find section '.interp'. The input file is most likely statically linked";
const NO_DYNAMIC = "cannot find section '.dynamic'. The input file is most likely statically linked";

function currentRpath(e: ParsedElf): string | undefined {
  let rpath: string | undefined;
  let runpath: string | undefined;
  for (const d of e.dyn) {
    if (d.tag === DT_RUNPATH) runpath ??= dynString(e, d.val);
    else if (d.tag === DT_RPATH) rpath ??= dynString(e, d.val);
  }
  return runpath ?? rpath;
}

/** patchelf's --shrink-rpath: keep relative entries and directories that hold a needed library of this machine. */
function shrink(e: ParsedElf, rpath: string, allowed: string[]): string {
  const needed = e.dyn.filter((d) => d.tag === DT_NEEDED).map((d) => dynString(e, d.val));
  const found = needed.map(() => false);
  const keep: string[] = [];
  for (const dir of rpath.split(':')) {
    if (dir === '') continue;
    if (dir[0] !== '/') {
      keep.push(dir);
      continue;
    }
    if (allowed.length && !allowed.some((p) => dir.startsWith(p))) continue;
    let hit = false;
    needed.forEach((lib, j) => {
      if (found[j]) return;
      let head: Buffer;
      try {
        const fd = openSync(`${dir}/${lib}`, 'r');
        try {
          head = Buffer.alloc(20);
          readSync(fd, head, 0, 20, 0);
        } finally {
          closeSync(fd);
        }
      } catch {
        return;
      }
      const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
      if (machine === e.machine) {
        found[j] = true;
        hit = true;
      }
    });
    if (hit) keep.push(dir);
  }
  return keep.join(':');
}

function processFile(o: Options, file: string, out: string[]): void {
  // --output copies the whole file, so it needs every byte.
  processBuffer(o, file, readInput(file, o.output === undefined), out);
}

function processBuffer(o: Options, file: string, buf: Buffer, out: string[]): void {
  precheck(buf);
  let e: ParsedElf;
  try {
    e = parseElf(buf, file);
  } catch (err) {
    if (err instanceof ElfError) throw new Fail(err.problem);
    throw err;
  }
  const needDyn = (): void => {
    if (e.dynIndex < 0) throw new Fail(NO_DYNAMIC);
  };
  if (o.printInterpreter) {
    if (e.interp === undefined) throw new Fail(NO_INTERP);
    out.push(`${e.interp}\n`);
  }
  // patchelf only looks for a soname in shared objects (ET_DYN); for others it prints nothing.
  if (o.printSoname && e.type === 3) {
    needDyn();
    const d = e.dyn.find((x) => x.tag === DT_SONAME);
    if (d) out.push(`${dynString(e, d.val)}\n`);
  }
  const edits: ElfEdits = {};
  if (o.pageSize !== undefined) edits.pageSize = o.pageSize;
  if (o.interpreter !== undefined) {
    if (e.interp === undefined) throw new Fail(NO_INTERP);
    edits.interpreter = o.interpreter;
  }
  if (o.printRpath) {
    needDyn();
    out.push(`${currentRpath(e) ?? ''}\n`);
  }
  if (o.rpathOp) {
    needDyn();
    const cur = currentRpath(e);
    if (o.rpathOp === 'remove') {
      if (cur !== undefined) edits.rpath = null;
    } else if (o.rpathOp === 'shrink') {
      if (cur !== undefined) {
        edits.rpath = shrink(e, cur, o.allowedPrefixes);
        // Like patchelf, a shrink also converts DT_RPATH to DT_RUNPATH unless --force-rpath.
        edits.forceRpath = o.forceRpath;
      }
    } else {
      edits.rpath = o.rpathOp === 'add' && cur ? `${cur}:${o.newRpath}` : o.newRpath!;
      edits.forceRpath = o.forceRpath;
    }
  }
  if (o.printNeeded) {
    needDyn();
    for (const d of e.dyn) if (d.tag === DT_NEEDED) out.push(`${dynString(e, d.val)}\n`);
  }
  let plan: EditPlan | null;
  try {
    // With --output the input buffer is kept intact; otherwise it receives the edit directly.
    plan = planEdit(e, edits, o.output === undefined);
  } catch (err) {
    if (err instanceof ElfError) throw new Fail(err.problem);
    throw new Fail(`${(err as Error).message}`);
  }
  if (o.output === undefined && plan && plan.pre !== buf) {
    // The edit rebuilds a segment relonix added before, i.e. copies the whole file: read it all.
    const full = readInput(file, false);
    plan = planEdit(parseElf(full, file), edits, false);
    if (plan) writeBackOrFail(file, plan.pre.subarray(0, plan.base));
    flush(out);
    return;
  }
  flush(out);
  if (o.output !== undefined) {
    const data = plan ? plan.pre.subarray(0, plan.base) : buf;
    try {
      writeFileSync(o.output, data);
      chmodSync(o.output, statSync(file).mode & 0o7777);
    } catch (err) {
      throw new Fail(`opening '${o.output}': ${sysMessage(err as NodeJS.ErrnoException)}`);
    }
  } else if (plan) {
    try {
      writePlanSync(file, plan, buf);
    } catch (err) {
      throw new Fail(`writing '${file}': ${sysMessage(err as NodeJS.ErrnoException)}`);
    }
  }
}

function writeBackOrFail(file: string, data: Buffer): void {
  try {
    writeBackSync(file, data);
  } catch (err) {
    throw new Fail(`writing '${file}': ${sysMessage(err as NodeJS.ErrnoException)}`);
  }
}

function flush(out: string[]): void {
  if (out.length) {
    process.stdout.write(out.join(''));
    out.length = 0;
  }
}

export async function runPatchelf(args: string[]): Promise<number> {
  if (args.length === 0) {
    process.stderr.write(HELP);
    return 1;
  }
  const out: string[] = [];
  try {
    const o = parseArgs(args);
    if (typeof o === 'number') return o;
    for (const f of o.files) processFile(o, f, out);
    return 0;
  } catch (err) {
    flush(out);
    if (err instanceof Fail) {
      process.stderr.write(`patchelf: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`patchelf: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}
