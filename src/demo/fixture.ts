// What a generated fixture is: the tarball and what the tests and the demo need to know of it,
// recorded in its manifest. Shared by the generator (fixture-tarball.ts and the Debian sources it
// reads) and the mirror that keeps and serves it.

/** Bump when the generated tarballs change shape, so stale fixtures are rebuilt. */
export const GENERATOR_VERSION = 4;

/** The fixtures there are: which Nix, from which Debian release, laid out how. */
export const FIXTURES = {
  '2.8': "Debian 12's nix-bin 2.8.0, as this machine has it installed",
  '2.8-no-build-remote': "Debian 12's nix-bin 2.8.0 without libexec/nix/build-remote",
  '2.26': "Debian 13's nix-bin 2.26.3, from Debian's packages",
} as const;
export type FixtureName = keyof typeof FIXTURES;

export interface Fixture {
  name: FixtureName;
  tarball: string;
  sha256: string;
  /** Nix's version, as `nix --version` prints it */
  version: string;
  system: 'x86_64-linux';
  nixPath: string;
  cacertPath: string;
  storePaths: string[];
  dir: string;
}

export interface Manifest extends Fixture {
  generator: number;
  tarballBytes: number;
  generatedMs: number;
}
