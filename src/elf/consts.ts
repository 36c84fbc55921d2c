// ELF numbers the engine needs; names follow <elf.h> so they can be looked up there.

export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;
export const PT_PHDR = 6;

export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

export const SHT_NOBITS = 8;
export const SHF_ALLOC = 2;

export const DT_NULL = 0;
export const DT_NEEDED = 1;
export const DT_STRTAB = 5;
export const DT_STRSZ = 10;
export const DT_SONAME = 14;
export const DT_RPATH = 15;
export const DT_RUNPATH = 29;

/** Tags whose value is an address; used to see whether anything else lives in a segment relonix added. */
export const DT_PTR_TAGS = new Set<number>([
  3 /* PLTGOT */, 4 /* HASH */, 5 /* STRTAB */, 6 /* SYMTAB */, 7 /* RELA */, 12 /* INIT */, 13 /* FINI */,
  17 /* REL */, 21 /* DEBUG */, 23 /* JMPREL */, 25 /* INIT_ARRAY */, 26 /* FINI_ARRAY */, 32 /* PREINIT_ARRAY */,
  36 /* RELR */, 0x6ffffef5 /* GNU_HASH */, 0x6ffffff0 /* VERSYM */, 0x6ffffffc /* VERDEF */, 0x6ffffffe /* VERNEED */,
]);

export const ET_NAMES: Record<number, string> = { 0: 'NONE', 1: 'REL', 2: 'EXEC', 3: 'DYN', 4: 'CORE' };

export const EM = {
  X86: 3,
  MIPS: 8,
  PPC: 20,
  PPC64: 21,
  S390: 22,
  ARM: 40,
  SPARCV9: 43,
  IA64: 50,
  X86_64: 62,
  AARCH64: 183,
  RISCV: 243,
  LOONGARCH: 258,
} as const;

export const MACHINE_NAMES: Record<number, string> = {
  2: 'sparc', 3: 'i386', 8: 'mips', 20: 'ppc', 21: 'ppc64', 22: 's390', 40: 'arm', 43: 'sparcv9', 50: 'ia64',
  62: 'x86_64', 183: 'aarch64', 243: 'riscv', 258: 'loongarch',
};

/**
 * The page size a new segment is aligned to. The kernel refuses a segment whose offset and address
 * disagree modulo the real page size, and some machines run 64 KiB pages (aarch64, ppc64 distros),
 * so those get the largest size they may run with (what patchelf does too).
 */
export function defaultPageSize(machine: number): number {
  switch (machine) {
    case EM.AARCH64:
    case EM.PPC:
    case EM.PPC64:
    case EM.MIPS:
    case EM.IA64:
    case EM.LOONGARCH:
      return 0x10000;
    case 2:
    case EM.SPARCV9:
      return 0x2000;
    default:
      return 0x1000;
  }
}
