// Running an ELF program of any machine on this host: natively only when it is of the machine, class
// and byte order this host runs (read from the header of the very node binary running the tests, not
// assumed), and through the matching qemu-user emulator otherwise, i386 included: a 64-bit kernel
// need not run 32-bit x86 programs at all ("Exec format error"), and then the exec falls back to sh.

import { readFileSync } from 'node:fs';
import { readElf } from '../../src/elf/index.ts';
import { requireTool } from './tools.ts';

/** qemu-user's program for each machine, class and byte order the tests run. */
const QEMU: Record<string, string> = {
  'i386/32/le': 'qemu-i386-static',
  'x86_64/64/le': 'qemu-x86_64-static',
  'arm/32/le': 'qemu-arm-static',
  'aarch64/64/le': 'qemu-aarch64-static',
  'ppc64/64/le': 'qemu-ppc64le-static',
  'ppc64/64/be': 'qemu-ppc64-static',
  's390/64/be': 'qemu-s390x-static',
  'riscv/64/le': 'qemu-riscv64-static',
};

function kindOf(file: string): string {
  const e = readElf(readFileSync(file), file);
  return `${e.machineName}/${e.class}/${e.endian}`;
}

let host: string | undefined;

/** The machine, class and byte order of the programs this host's kernel runs: node's own. */
export function hostKind(): string {
  host ??= kindOf(process.execPath);
  return host;
}

/** argv that runs the ELF program `file` here: itself when the host runs its kind, else under qemu-user. */
export function programArgv(file: string, args: string[] = []): { cmd: string; args: string[] } {
  const kind = kindOf(file);
  if (kind === hostKind()) return { cmd: file, args };
  const qemu = QEMU[kind];
  if (!qemu) throw new Error(`${file} is a ${kind} program, which this host does not run and no qemu-user program here emulates`);
  return { cmd: requireTool(qemu), args: [file, ...args] };
}
