// What a generated demo fixture is: the tarball and what the tests and the demo need to know of it,
// recorded in its manifest. Shared by the generator (debian-nix.ts) and the mirror that serves it.

/** Bump when the generated tarball changes shape, so stale fixtures are rebuilt. */
export const GENERATOR_VERSION = 3;

export interface Fixture {
  tarball: string;
  sha256: string;
  version: '2.8.0';
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
