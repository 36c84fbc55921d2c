// What an edit asks for, what the planner reserves for it, and what the writer hands to a file.
import type { DynEntry, Phdr } from '../reader.ts';

export interface ElfEdits {
  interpreter?: string;
  /** A new search path; null removes DT_RPATH/DT_RUNPATH. */
  rpath?: string | null;
  /** Write DT_RPATH instead of DT_RUNPATH. */
  forceRpath?: boolean;
  pageSize?: number;
}

/** Where one thing goes: file offset, address and size. */
export interface Place {
  offset: number;
  vaddr: number;
  size: number;
}

export interface SectionUpdate {
  index: number;
  addr?: number;
  offset?: number;
  size?: number;
}

/**
 * The reserved layout of an edited file, decided before a byte is written. Offsets are those of
 * the output file (after any shift).
 */
export interface Layout {
  /** Bytes inserted at `at` to make room for the program header table (everything from `at` on moves `by`). */
  shift?: { at: number; by: number };
  /** The program header table: its entries, and where it is written when it changes. */
  phdrs: Phdr[];
  table?: { offset: number; fresh: boolean };
  /** The segment appended (or rebuilt) at the end of the file; `base` is where the old content stops. */
  segment?: Place & { base: number };
  dyn?: { offset: number; slots: number; entries: DynEntry[]; fresh: boolean };
  interp?: { offset: number; bytes: Buffer; room: number; fresh: boolean };
  str?: { offset: number; bytes: Buffer; fresh: boolean };
  sections: SectionUpdate[];
}

/**
 * The result of an edit: `pre` holds the output's bytes below `base` (changed ranges listed in
 * `dirty`, and in `fresh` those no live structure points at yet); when `seg` is set, the output
 * continues with zeros up to `off0` and then `seg`.
 */
export interface EditPlan {
  pre: Buffer;
  base: number;
  dirty: Array<[number, number]>;
  /** Ranges inside the old file that nothing reads until the header switches to them. */
  fresh?: Array<[number, number]>;
  off0: number;
  seg?: Buffer;
}
