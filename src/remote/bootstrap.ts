// builder add --bootstrap: a builder with no Nix at the prefix gets one over ssh, the way this prefix
// got its own: this relonix (the single-file bundle) is copied there and run with the builder's node,
// from the same tarball (copied too when it is a local file) or the same caches.
import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';
import { isLocalSource, localSourcePath } from '../net/download.ts';
import { defaultStoreDir, type Layout } from '../prefix/layout.ts';
import type { BootstrapSource, BootstrapState } from '../prefix/state.ts';
import { findOwnBundle } from '../util/bundle.ts';
import { RelonixError } from '../util/errors.ts';
import { shQuote } from '../util/shell.ts';
import { startPiped } from '../util/spawn.ts';
import type { Builder } from './machines.ts';
import { noSsh, sshArgs, sshFailure, sshRun } from './ssh.ts';

/** The oldest node the bundle runs on (package.json engines). */
const MIN_NODE = 20;

/** A file to copy to the builder before its bootstrap runs. */
export interface Upload {
  local: string;
  remote: string;
}

export interface RemoteBootstrapPlan {
  uploads: Upload[];
  /** the bootstrap's argv after `node BUNDLE` */
  args: string[];
}

/**
 * Pure: what to copy and run so the builder bootstraps the prefix's path from what this prefix was
 * bootstrapped from. A local tarball has no meaning there, so it travels with the bundle; URLs and
 * caches are passed on as they are, the tarball pinned to the sha256 this prefix verified.
 */
export function planRemoteBootstrap(l: Layout, source: BootstrapSource, verifiedSha256: string | undefined, bundle: string, dir: string): RemoteBootstrapPlan {
  const uploads: Upload[] = [{ local: bundle, remote: path.join(dir, 'relonix.mjs') }];
  const args = ['bootstrap', '--prefix', l.prefix];
  if (l.storeDir !== defaultStoreDir(l.prefix)) args.push('--store-dir', l.storeDir);
  if (source.url) {
    let url = source.url;
    if (isLocalSource(url)) {
      const tarball = { local: localSourcePath(url), remote: path.join(dir, path.basename(localSourcePath(url))) };
      uploads.push(tarball);
      url = tarball.remote;
    }
    args.push('--url', url);
    const sha256 = source.sha256 ?? verifiedSha256;
    if (sha256) args.push('--sha256', sha256);
  }
  for (const c of source.caches) args.push('--cache', c);
  for (const k of source.trustedKeys) args.push('--trusted-key', k);
  return { uploads, args };
}

/** The single-file bundle of this relonix, which the builder runs. */
export function ownBundle(): string {
  const bundle = findOwnBundle();
  if (!bundle) {
    throw noOwnBundle();
  }
  return bundle;
}

/** A checkout that has not built the bundle has nothing to copy to the builder. */
export function noOwnBundle(): RelonixError {
  return new RelonixError(`--bootstrap copies this relonix's bundle to the builder, and this checkout has not built it (dist/relonix.mjs)`, {
    kind: 'failure',
    hint: 'in a checkout, npm run build makes it',
  });
}

/** A prefix whose state does not say what it was bootstrapped from cannot be copied that way. */
export function sourceNotRecorded(l: Layout, host: string, byHand: string): RelonixError {
  return new RelonixError(`${l.prefix} does not record what it was bootstrapped from, so --bootstrap cannot bootstrap ${host} the same way`, {
    kind: 'preflight',
    hint: `on ${host}, run: ${byHand} (or bootstrap this prefix again with relonix bootstrap, which records it)`,
  });
}

/** The bootstrap that ran on the builder exited non-zero; its output was passed on. */
export function remoteBootstrapFailed(l: Layout, host: string, code: number | null): RelonixError {
  return new RelonixError(`the bootstrap of ${l.prefix} on ${host} failed (exit ${code}); its output is above`, {
    kind: 'failure',
    hint: `fix what it says, then run the same relonix builder add --bootstrap again: the bootstrap there resumes where it stopped`,
  });
}

/** The builder has no node, or one too old to run the bundle (`version` undefined: none). */
export function builderNodeTooOld(host: string, version: string | undefined, byHand: string): RelonixError {
  return new RelonixError(
    `--bootstrap runs relonix with the node of ${host}, which ${version !== undefined ? `is ${version}, older than ${MIN_NODE}` : 'has none on its PATH'}`,
    {
      kind: 'preflight',
      hint: `install Node.js ${MIN_NODE} or newer on ${host}, or run there: ${byHand}`,
    },
  );
}

/** A file the remote bootstrap needs (the bundle, a local tarball) is no longer here. */
export function uploadGone(local: string, host: string, byHand: string): RelonixError {
  return new RelonixError(`--bootstrap would copy ${local} to ${host}, and it is gone`, { kind: 'preflight', hint: `on ${host}, run: ${byHand}` });
}

/** The builder refused the copy of a file into the prefix's directory there. */
export function builderWriteRefused(b: Pick<Builder, 'host' | 'user'>, remote: string, said: string): RelonixError {
  return new RelonixError(`cannot write ${remote} on ${b.host}: ${said}`, {
    kind: 'preflight',
    hint: `the prefix's directory must be writable by ${b.user ?? 'that user'} there`,
  });
}

/** Bootstraps the prefix's path on the builder, its output passed on to `out` as it comes. */
export async function bootstrapOverSsh(l: Layout, b: Builder, s: BootstrapState, out: NodeJS.WritableStream, byHand: string): Promise<void> {
  if (!s.source) {
    throw sourceNotRecorded(l, b.host, byHand);
  }
  await checkNode(l, b, byHand);
  const dir = path.join(l.relonixDir, 'incoming');
  const verified = (s.stages.fetch?.detail as { sha256?: string } | undefined)?.sha256;
  const plan = planRemoteBootstrap(l, s.source, verified, ownBundle(), dir);
  for (const u of plan.uploads) await upload(l, b, u, byHand);
  out.write(`relonix: bootstrapping ${l.prefix} on ${b.host}\n`);
  const run = startPiped('ssh', sshArgs(l, b, ['node', path.join(dir, 'relonix.mjs'), ...plan.args].map(shQuote).join(' ')), process.env);
  run.child.stdout!.pipe(out, { end: false });
  run.child.stderr!.pipe(out, { end: false });
  // ssh's own complaint, if it fails, is the end of stderr: kept to word the error
  let said = '';
  run.child.stderr!.on('data', (d: Buffer) => {
    said = (said + d.toString()).slice(-4096);
  });
  const r = await run.done;
  if (r.startError) throw noSsh(r.startError);
  if (r.code === 255) throw sshFailure(l, b, { code: 255, signal: null, stdout: '', stderr: said, all: said });
  if (r.code !== 0) {
    throw remoteBootstrapFailed(l, b.host, r.code);
  }
  await sshRun(l, b, `rm -rf ${shQuote(dir)}`);
}

async function checkNode(l: Layout, b: Builder, byHand: string): Promise<void> {
  const r = await sshRun(l, b, 'node -p process.versions.node');
  if (r.code === 255) throw sshFailure(l, b, r);
  const major = r.code === 0 ? Number(r.stdout.trim().split('.')[0]) : NaN;
  if (major >= MIN_NODE) return;
  throw builderNodeTooOld(b.host, r.code === 0 ? r.stdout.trim() : undefined, byHand);
}

/** Copies a file to the builder: written beside its name, renamed into place once complete. */
async function upload(l: Layout, b: Builder, u: Upload, byHand: string): Promise<void> {
  if (!existsSync(u.local)) {
    throw uploadGone(u.local, b.host, byHand);
  }
  const part = `${u.remote}.part`;
  const r = await sshRun(
    l,
    b,
    `mkdir -p ${shQuote(path.dirname(u.remote))} && cat > ${shQuote(part)} && mv -f ${shQuote(part)} ${shQuote(u.remote)}`,
    createReadStream(u.local),
  );
  if (r.code === 255) throw sshFailure(l, b, r);
  if (r.code !== 0) {
    throw builderWriteRefused(b, u.remote, r.stderr.trim() || `exit ${r.code}`);
  }
}
