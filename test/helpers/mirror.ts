// A fixture tarball (a Debian Nix in the official release layout, generated once) served on
// loopback as a release mirror serves it, with URL.sha256 beside it. The server keeps a log of every
// request, so a test can prove a run needed no network.

import path from 'node:path';
import { after, before } from 'node:test';
import type { Fixture, FixtureName } from '../../src/demo/fixture.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { type RequestRecord, startServer } from './http.ts';

export interface Mirror {
  fx: Fixture;
  /** the tarball's URL, as `bootstrap --url` takes it */
  url: string;
  /** every request the mirror answered, in order */
  log: RequestRecord[];
  close(): Promise<void>;
}

export async function serveFixture(name?: FixtureName): Promise<Mirror> {
  const fx = await ensureFixture({ name });
  const server = await startServer({ dir: path.dirname(fx.tarball) });
  return { fx, url: `${server.url}/${path.basename(fx.tarball)}`, log: server.log, close: () => server.close() };
}

/**
 * The mirror of fixture `name` for a whole test file, or the suite this is called in: served in its
 * before() and closed in its after(). Its fields are there for the tests, once before() has run.
 */
export function mirrorFor(name?: FixtureName): Mirror {
  const mirror = {} as Mirror;
  before(async () => {
    Object.assign(mirror, await serveFixture(name));
  });
  after(async () => {
    await mirror.close?.();
  });
  return mirror;
}
