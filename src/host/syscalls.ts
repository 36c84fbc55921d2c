// What the kernel, through whatever seccomp filter this process runs under, answers to the newer
// syscalls glibc makes without falling back (clone3, faccessat2, close_range, fchmodat2: glibc
// retries the old way only on ENOSYS, so a profile answering EPERM breaks threads and file checks),
// and to unshare(CLONE_NEWUSER). Node cannot make a raw syscall, so a probe of a few dozen
// instructions without libc (a static ELF for x86_64 or aarch64) makes the five calls and writes
// the five results. A seccomp filter holds for every process this one starts: the probe meets
// what Nix and its builders will.
import { execFile } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { EM, ET, PF, PT } from '../elf/consts.ts';
import { classLayout, EI, ELF_MAGIC, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, IDENT_SIZE } from '../elf/layout.ts';
import { errorMessage } from '../util/errors.ts';
import { clearStaleTemps, tempSibling } from '../util/fs.ts';

/** The newer syscalls the probe makes, in the order it writes their results. */
export const NEWER_SYSCALLS = ['clone3', 'faccessat2', 'close_range', 'fchmodat2'] as const;
export type NewerSyscall = (typeof NEWER_SYSCALLS)[number];

const ERRNO = { EPERM: 1, EINVAL: 22, ENOSYS: 38 } as const;

/**
 * What each call gets from a kernel that runs it: clone3(NULL, 0) and fchmodat2 with a flag it
 * rejects are EINVAL (nothing is created or changed); faccessat2(AT_FDCWD, "/", F_OK, 0) and
 * close_range(~0U, ~0U, 0) (no descriptor that high) succeed.
 */
const REACHED: Record<NewerSyscall, number> = { clone3: ERRNO.EINVAL, faccessat2: 0, close_range: 0, fchmodat2: ERRNO.EINVAL };

/**
 * The probe for each architecture Node runs on whose Nix is common, assembled from the listing in
 * its comment (GNU as). Syscall numbers: clone3 435, close_range 436, faccessat2 439, fchmodat2
 * 452 on both; unshare, write and exit_group are 272, 1, 231 on x86_64 and 97, 64, 94 on aarch64.
 * Each result goes to the stack, then write(1, sp, 40) and exit_group(0).
 */
const PROBES: Record<string, { machine: number; code: string }> = {
  // sub $40,%rsp; mov $435,%eax; xor %edi,%edi; xor %esi,%esi; syscall; mov %rax,(%rsp)
  // mov $439,%eax; mov $-100,%edi; lea slash(%rip),%rsi; xor %edx,%edx; xor %r10d,%r10d; syscall; mov %rax,8(%rsp)
  // mov $436,%eax; mov $-1,%edi; mov $-1,%esi; xor %edx,%edx; syscall; mov %rax,16(%rsp)
  // mov $452,%eax; mov $-100,%edi; lea slash(%rip),%rsi; xor %edx,%edx; mov $0x8000,%r10d; syscall; mov %rax,24(%rsp)
  // mov $272,%eax; mov $0x10000000,%edi; syscall; mov %rax,32(%rsp)
  // mov $1,%eax; mov $1,%edi; mov %rsp,%rsi; mov $40,%edx; syscall; mov $231,%eax; xor %edi,%edi; syscall
  // slash: .asciz "/"
  x64: {
    machine: EM.X86_64,
    code:
      '4883ec28b8b301000031ff31f60f0548890424b8b7010000bf9cffffff488d357200000031d24531d20f054889442408b8b4010000bfffffffffbeffffffff' +
      '31d20f054889442410b8c4010000bf9cffffff488d353d00000031d241ba008000000f054889442418b810010000bf000000100f054889442420b801000000' +
      'bf010000004889e6ba280000000f05b8e700000031ff0f052f00',
  },
  // sub sp,sp,#48; mov x0,#0; mov x1,#0; mov x8,#435; svc #0; str x0,[sp,#0]
  // mov x0,#-100; adr x1,slash; mov x2,#0; mov x3,#0; mov x8,#439; svc #0; str x0,[sp,#8]
  // mov w0,#-1; mov w1,#-1; mov x2,#0; mov x8,#436; svc #0; str x0,[sp,#16]
  // mov x0,#-100; adr x1,slash; mov x2,#0; mov x3,#0x8000; mov x8,#452; svc #0; str x0,[sp,#24]
  // mov x0,#0x10000000; mov x8,#97; svc #0; str x0,[sp,#32]
  // mov x0,#1; mov x1,sp; mov x2,#40; mov x8,#64; svc #0; mov x0,#0; mov x8,#94; svc #0
  // slash: .asciz "/"
  arm64: {
    machine: EM.AARCH64,
    code:
      'ffc300d1000080d2010080d2683680d2010000d4e00300f9600c8092e1030010020080d2030080d2e83680d2010000d4e00700f90000801201008012020080d2' +
      '883680d2010000d4e00b00f9600c809241020010020080d2030090d2883880d2010000d4e00f00f90000a2d2280c80d2010000d4e01300f9200080d2e1030091' +
      '020580d2080880d2010000d4000080d2c80b80d2010000d42f00',
  },
};

/** Where the probe is loaded: above the lowest address user space may map (vm.mmap_min_addr). */
const BASE = 0x400000;
const RESULTS = NEWER_SYSCALLS.length + 1;

/** Pure: the probe for an architecture (Node's `process.arch`), a static ELF of one segment; undefined where there is none. */
export function probeProgram(arch: string): Buffer | undefined {
  const p = PROBES[arch];
  if (!p) return undefined;
  const l = classLayout(true, true);
  const code = Buffer.from(p.code, 'hex');
  const entry = l.ehdrSize + l.phdr.size;
  const buf = Buffer.alloc(entry + code.length);
  buf.set(ELF_MAGIC);
  buf[EI.CLASS] = ELFCLASS64;
  buf[EI.DATA] = ELFDATA2LSB;
  buf[EI.VERSION] = EV_CURRENT;
  const io = l.io(buf);
  l.ehdr.write(io, IDENT_SIZE, {
    type: ET.EXEC,
    machine: p.machine,
    version: EV_CURRENT,
    entry: BASE + entry,
    phoff: l.ehdrSize,
    ehsize: l.ehdrSize,
    phentsize: l.phdr.size,
    phnum: 1,
  });
  const size = buf.length;
  l.phdr.write(io, l.ehdrSize, { type: PT.LOAD, flags: PF.R | PF.X, offset: 0, vaddr: BASE, paddr: BASE, filesz: size, memsz: size, align: 0x10000 });
  code.copy(buf, entry);
  return buf;
}

type SyscallVerdict = 'reached' | 'missing' | 'refused';

interface SyscallAnswer {
  name: NewerSyscall;
  /** 0, or the errno the call got */
  errno: number;
  /** reached the kernel; not in this kernel (ENOSYS: glibc falls back); refused by a filter */
  verdict: SyscallVerdict;
}

export interface SyscallAnswers {
  newer: SyscallAnswer[];
  /** unshare(CLONE_NEWUSER): 0 when a user namespace could be made, else the errno */
  userns: number;
}

/** Pure: the probe's 40 bytes (five signed 64-bit results, as the kernel returns them) → answers. */
export function decodeAnswers(out: Buffer): SyscallAnswers | undefined {
  if (out.length !== RESULTS * 8) return undefined;
  const errnos = Array.from({ length: RESULTS }, (_, i) => {
    const v = out.readBigInt64LE(i * 8);
    return v < 0n ? Number(-v) : 0;
  });
  const newer = NEWER_SYSCALLS.map((name, i): SyscallAnswer => {
    const errno = errnos[i]!;
    const verdict = errno === REACHED[name] ? 'reached' : errno === ERRNO.ENOSYS ? 'missing' : 'refused';
    return { name, errno, verdict };
  });
  return { newer, userns: errnos[NEWER_SYSCALLS.length]! };
}

/** The seccomp lines of /proc/self/status: the mode (0 none, 1 strict, 2 filter) and how many filters. */
export interface SeccompStatus {
  mode?: number;
  filters?: number;
}

/** Pure: `Seccomp:` and `Seccomp_filters:` from /proc/PID/status. */
export function parseSeccompStatus(text: string): SeccompStatus {
  const num = (field: string) => {
    const m = new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  return { mode: num('Seccomp'), filters: num('Seccomp_filters') };
}

export function readSeccompStatus(): SeccompStatus {
  try {
    return parseSeccompStatus(readFileSync('/proc/self/status', 'utf8'));
  } catch {
    return {};
  }
}

export type ProbeOutcome =
  | { ran: true; answers: SyscallAnswers }
  /** the filter killed the probe (SECCOMP_RET_KILL: SIGSYS) */
  | { ran: true; killedBy: string }
  | { ran: false; why: string };

/** Runs a program and resolves to its raw stdout, or the signal that ended it. */
function runRaw(file: string): Promise<{ out: Buffer; signal?: string; error?: string }> {
  return new Promise((resolve) => {
    execFile(file, [], { encoding: 'buffer', env: {}, timeout: 10_000 }, (err, stdout) => {
      const signal = (err as { signal?: string } | null)?.signal ?? undefined;
      resolve({ out: stdout, signal, error: err && !signal ? errorMessage(err) : undefined });
    });
  });
}

/**
 * Writes the probe into a private directory under the first of `dirs` where it can run, runs it
 * and removes it. Where no probe exists for this architecture, or none of the dirs lets a program
 * run, says why.
 */
export async function probeSyscalls(dirs: string[], arch: string = process.arch): Promise<ProbeOutcome> {
  const program = probeProgram(arch);
  if (!program) return { ran: false, why: `relonix has no syscall probe for ${arch}` };
  const tried: string[] = [];
  for (const dir of dirs) {
    let tmp: string | undefined;
    try {
      // named as every relonix temporary is, so a run killed here leaves what the next one clears
      const name = path.join(dir, 'syscall-probe');
      await clearStaleTemps(name);
      tmp = tempSibling(name);
      await fs.mkdir(tmp, { mode: 0o700 });
      const file = path.join(tmp, 'probe');
      await fs.writeFile(file, program, { mode: 0o700 });
      const r = await runRaw(file);
      if (r.signal) return { ran: true, killedBy: r.signal };
      const answers = r.error ? undefined : decodeAnswers(r.out);
      if (answers) return { ran: true, answers };
      tried.push(`${dir}: ${r.error ?? `the probe wrote ${r.out.length} bytes`}`);
    } catch (e) {
      tried.push(`${dir}: ${errorMessage(e)}`);
    } finally {
      if (tmp) await fs.rm(tmp, { recursive: true, force: true });
    }
  }
  return { ran: false, why: `the probe could not run (${tried.join('; ')})` };
}
