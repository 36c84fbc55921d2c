/**
 * The exit codes of the CLI contract (README, `relonix --help`), written out here rather than
 * imported: a test of the contract must not follow a change to the code it tests.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  integrity: 3,
  busy: 4,
  preflight: 5,
  network: 6,
} as const;
