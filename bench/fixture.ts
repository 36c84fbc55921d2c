// Which real Nix a bench measures: RELONIX_BENCH_FIXTURE names one of the generated fixtures (2.8
// unless it says otherwise), so the same bench runs against Debian 12's and Debian 13's Nix.
import { FIXTURES, type FixtureName } from '../src/demo/fixture.ts';

export function benchFixture(): FixtureName {
  const name = process.env.RELONIX_BENCH_FIXTURE ?? '2.8';
  if (!(name in FIXTURES)) throw new Error(`RELONIX_BENCH_FIXTURE=${name} names no fixture: one of ${Object.keys(FIXTURES).join(', ')}`);
  return name as FixtureName;
}
