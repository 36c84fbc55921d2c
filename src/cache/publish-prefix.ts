// Publishing from a prefix: which paths (the ones named, or the prefix's active Nix and its CA
// bundle, recorded in the cache's manifest so a wiped host can restore them), their closure from
// the prefix's own database, and the push.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Layout } from '../prefix/layout.ts';
import { noNix, readState } from '../prefix/state.ts';
import { RelonixError } from '../util/errors.ts';
import { nixSystem } from '../util/system.ts';
import { checkCompressionChoice, resolveCompression } from './compress.ts';
import { readSecretKeyFile } from './key-files.ts';
import type { SecretKey } from './keys.ts';
import { queryClosure } from './nixstore.ts';
import { type PublishResult, publishPaths } from './publish.ts';
import { openTarget } from './targets.ts';

export interface PrefixPublishOptions {
  layout: Layout;
  /** the cache URL */
  to: string;
  /** the key to sign with, or the file it is in */
  secretKey: SecretKey | string;
  /** store paths to publish; none: the active Nix */
  paths: string[];
  /** publish this path's closure and record it as the Nix for this system */
  asNix?: string;
  compression: string;
  jobs?: number;
  headers?: string[];
  /** an explicit nix-store to read the database with (a host Nix acting as the prefix's) */
  nixStore?: string;
  log?: (msg: string) => void;
}

export interface PrefixPublishResult extends PublishResult {
  /** paths in the closure that was published */
  closure: number;
  record?: { system: string; nix: string; cacert?: string };
}

/** `--as-nix` of a path that is no Nix: relonix.json would send every restore to it. */
export function notANix(p: string): RelonixError {
  return new RelonixError(`${p} has no bin/nix-store, so it is not a Nix: relonix.json must name a Nix a wiped host can restore and run`, {
    kind: 'usage',
    hint: 'pass the store path of a Nix (its bin/ holds nix-store and nix) as --as-nix, or publish this path without --as-nix',
  });
}

async function checkIsNix(p: string): Promise<void> {
  const st = await fs.stat(path.join(p, 'bin', 'nix-store')).catch(() => undefined);
  if (!st?.isFile()) throw notANix(p);
}

export async function publishFromPrefix(o: PrefixPublishOptions): Promise<PrefixPublishResult> {
  const l = o.layout;
  // before any work: an unknown compression, or an explicit zstd on a host without zstd, fails at once
  const compression = await resolveCompression(checkCompressionChoice(o.compression), o.log);
  const key = typeof o.secretKey === 'string' ? await readSecretKeyFile(o.secretKey) : o.secretKey;
  const target = openTarget(o.to, { headers: o.headers, netrc: l.netrcFile });
  const state = await readState(l);
  let roots = o.paths.map((p) => path.resolve(p));
  let record: PrefixPublishResult['record'];
  if (o.asNix) {
    await checkIsNix(path.resolve(o.asNix));
    roots = [path.resolve(o.asNix), ...roots];
    record = { system: nixSystem(), nix: path.resolve(o.asNix) };
  } else if (roots.length === 0) {
    if (!state.nix) {
      throw noNix(l.prefix, 'so there is no Nix to publish', 'or name the store paths to publish');
    }
    roots = [state.nix, ...(state.cacert ? [state.cacert] : [])];
    record = { system: nixSystem(), nix: state.nix, cacert: state.cacert };
  }
  const records = await queryClosure({ layout: l, nix: state.nix, nixStore: o.nixStore }, roots);
  const r = await publishPaths({ target, storeDir: l.storeDir, paths: records, key, compression, jobs: o.jobs ?? 4, record, log: o.log });
  return { ...r, closure: records.length, record };
}
