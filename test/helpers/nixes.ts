// The two real Nixes every bootstrap-based test runs against: Debian 12's Nix 2.8 and Debian 13's
// Nix 2.26, each a tarball in the official release layout (src/demo/mirror.ts; `.ci/run` makes
// them before the tests). A test file declares its tests once, inside forEachNix: they run for each
// Nix in a suite of its own (its before/after hooks are that suite's), and every test's name ends in
// the Nix it ran against, so the runner's output shows each.
import { describe, test } from 'node:test';
import type { FixtureName } from '../../src/demo/fixture.ts';

export interface TestNix {
  /** the fixture tarball it comes from */
  fixture: FixtureName;
  /** as the names of the tests say it: `Nix 2.26` */
  label: string;
  /** `test`, with the label after the name */
  test: typeof test;
}

export const TEST_NIXES: FixtureName[] = ['2.8', '2.26'];

/**
 * nix.conf's build-hook line in a prefix with no builders: 2.26 runs no hook when it is empty; 2.8
 * runs one whatever (an empty one it tries to execute), so the prefix has one that declines.
 */
export function hookLineWithoutBuilders(fixture: FixtureName, prefix: string): string {
  return fixture === '2.26' ? 'build-hook =' : `build-hook = ${prefix}/var/relonix/no-builders-hook`;
}

function labelled(label: string): typeof test {
  const wrapped = (name: string, ...rest: unknown[]) => (test as (...a: unknown[]) => unknown)(`${name} [${label}]`, ...rest);
  return wrapped as typeof test;
}

/**
 * Declares the tests `body` declares once per Nix, each set in a suite of its own whose tests run
 * one after another. With `concurrently`, the two suites run side by side (the test runner runs one
 * file at a time on two cores, and much of a bootstrap waits on one core): for files whose tests
 * measure no time against a clock and share nothing but what the file sets up before them.
 */
export function forEachNix(body: (nix: TestNix) => void, o: { concurrently?: boolean } = {}): void {
  const suites = () => {
    for (const fixture of TEST_NIXES) {
      const label = `Nix ${fixture}`;
      describe(label, { concurrency: 1 }, () => body({ fixture, label, test: labelled(label) }));
    }
  };
  if (o.concurrently) describe(`Nix ${TEST_NIXES.join(' and ')}, side by side`, { concurrency: TEST_NIXES.length }, suites);
  else suites();
}
