// ELF numbers the engine needs; names follow <elf.h> so they can be looked up there.

/** Segment types (p_type). */
export const PT = { LOAD: 1, DYNAMIC: 2, INTERP: 3, PHDR: 6 } as const;

/** Segment flags (p_flags). */
export const PF = { X: 1, W: 2, R: 4 } as const;

/** Section types (sh_type) and flags (sh_flags). */
export const SHT = { NOBITS: 8, DYNSYM: 11 } as const;
export const SHF = { ALLOC: 2 } as const;

/** Object file types (e_type). */
export const ET = { EXEC: 2, DYN: 3 } as const;

/** Dynamic table tags (d_tag). */
export const DT = {
  NULL: 0,
  NEEDED: 1,
  HASH: 4,
  STRTAB: 5,
  SYMTAB: 6,
  STRSZ: 10,
  SONAME: 14,
  RPATH: 15,
  RUNPATH: 29,
  MIPS_RLD_MAP_REL: 0x70000035,
  GNU_HASH: 0x6ffffef5,
  CONFIG: 0x6ffffefa,
  DEPAUDIT: 0x6ffffefb,
  AUDIT: 0x6ffffefc,
  FLAGS_1: 0x6ffffffb,
  VERDEF: 0x6ffffffc,
  VERDEFNUM: 0x6ffffffd,
  VERNEED: 0x6ffffffe,
  VERNEEDNUM: 0x6fffffff,
  AUXILIARY: 0x7ffffffd,
  FILTER: 0x7fffffff,
} as const;

/** DT_FLAGS_1 bits. */
export const DF_1_PIE = 0x08000000;

/** Tags whose value is an offset into the dynamic string table. */
export const DT_STRING_TAGS = new Set<number>([DT.NEEDED, DT.SONAME, DT.RPATH, DT.RUNPATH, DT.CONFIG, DT.DEPAUDIT, DT.AUDIT, DT.AUXILIARY, DT.FILTER]);

/** Tags whose value is an address; used to see whether anything else lives in a segment relonix added. */
export const DT_PTR_TAGS = new Set<number>([
  3 /* PLTGOT */,
  DT.HASH,
  DT.STRTAB,
  DT.SYMTAB,
  7 /* RELA */,
  12 /* INIT */,
  13 /* FINI */,
  17 /* REL */,
  21 /* DEBUG */,
  23 /* JMPREL */,
  25 /* INIT_ARRAY */,
  26 /* FINI_ARRAY */,
  32 /* PREINIT_ARRAY */,
  36 /* RELR */,
  DT.GNU_HASH,
  0x6ffffff0 /* VERSYM */,
  DT.VERDEF,
  DT.VERNEED,
]);

export const ET_NAMES: Record<number, string> = { 0: 'NONE', 1: 'REL', 2: 'EXEC', 3: 'DYN', 4: 'CORE' };

export const EM = {
  SPARC: 2,
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
  [EM.SPARC]: 'sparc',
  [EM.X86]: 'i386',
  [EM.MIPS]: 'mips',
  [EM.PPC]: 'ppc',
  [EM.PPC64]: 'ppc64',
  [EM.S390]: 's390',
  [EM.ARM]: 'arm',
  [EM.SPARCV9]: 'sparcv9',
  [EM.IA64]: 'ia64',
  [EM.X86_64]: 'x86_64',
  [EM.AARCH64]: 'aarch64',
  [EM.RISCV]: 'riscv',
  [EM.LOONGARCH]: 'loongarch',
};

/**
 * The page size a new segment is aligned to: the largest page size the machine's Linux kernels run
 * with. The kernel and ld.so refuse a segment whose offset and address disagree modulo the real page
 * size, or whose alignment is not a multiple of it, and aarch64 and ppc64 distributions run 64 KiB
 * pages, so those get 64 KiB (what patchelf does too).
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
    case EM.SPARC:
    case EM.SPARCV9:
      return 0x2000;
    default:
      return 0x1000;
  }
}
