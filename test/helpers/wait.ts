// Waiting in a test for something another process does: polled, with a bound, and a failure that
// says what never happened.
import assert from 'node:assert/strict';

/** Polls `ok` every `every` ms until it holds; fails the test after `ms` with `what`. */
export async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, o: { ms?: number; every?: number } = {}): Promise<void> {
  const end = Date.now() + (o.ms ?? 60_000);
  while (!(await ok())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, o.every ?? 50));
  }
}
