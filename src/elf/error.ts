// The engine's one error type. It stays inside src/elf/: the command line and the relocator turn it
// into a RelonixError where they call the engine.

export class ElfError extends Error {
  /** The problem without the file name, for callers that print their own prefix (patchelf-style). */
  readonly problem: string;
  readonly file: string;
  /** The byte offset in the file the problem was found at, when there is one. */
  readonly offset?: number;
  constructor(file: string, problem: string, offset?: number) {
    super(`${file}: ${problem}`);
    this.name = 'ElfError';
    this.problem = problem;
    this.file = file;
    if (offset !== undefined) this.offset = offset;
  }
}
