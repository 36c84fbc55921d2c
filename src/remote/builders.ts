// relonix builder add/list/remove: a remote prefix at the same path, checked over ssh as Nix will
// reach it, recorded in var/relonix/builders.json, from which the machines file, the ssh config,
// nix.conf's builders block and the profile scripts' NIX_SSHOPTS are written.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { hookForms, noBuildHook } from '../prefix/build-hook.ts';
import { writeEnvScripts } from '../prefix/environment.ts';
import { checkPrefixPaths } from '../prefix/guard.ts';
import { defaultStoreDir, type Layout } from '../prefix/layout.ts';
import { buildHookSetting, dropNixConfBlock, mergeNixConf, withBuildHook } from '../prefix/nix-conf.ts';
import { prefixId, readState } from '../prefix/state.ts';
import { RelonixError } from '../util/errors.ts';
import { exists, makeDirs, writeFileAtomic } from '../util/fs.ts';
import { withLock } from '../util/lock.ts';
import { shQuote } from '../util/shell.ts';
import type { ToolResult } from '../util/spawn.ts';
import { nixSystem } from '../util/system.ts';
import { BUILDERS_BLOCK, type Builder, buildersBlock, machinesText, parseBuildersFile, parseBuilderUrl, sshConfigText } from './machines.ts';
import { checkPasswdEntry, sshFailure, sshRun } from './ssh.ts';

export interface AddOptions {
  layout: Layout;
  url: string;
  key?: string;
  jobs: number;
  /** the system the builder must be (default: this host's) */
  system?: string;
  /** a builder with no Nix at the prefix is bootstrapped over ssh, its output written to `progress` */
  bootstrap?: boolean;
  progress?: NodeJS.WritableStream;
}

export async function readBuilders(l: Layout): Promise<Builder[]> {
  const text = await fs.readFile(l.buildersFile, 'utf8').catch(() => undefined);
  return text === undefined ? [] : parseBuildersFile(text, l.buildersFile);
}

/** Checks the builder over ssh, then records it (replacing one of the same address). */
export async function addBuilder(o: AddOptions): Promise<Builder> {
  const l = o.layout;
  checkPasswdEntry();
  // a path Nix can use at both ends; NIX_SSHOPTS, split at whitespace, carries `-F <file>` as one word
  checkPrefixPaths(l);
  const key = o.key === undefined ? undefined : path.resolve(o.key);
  if (key && !(await exists(key))) throw noSshKey(key);
  const b: Builder = { ...parseBuilderUrl(o.url), key, jobs: o.jobs, system: o.system ?? nixSystem() };
  // Nix hands builds to builders through its build hook: a Nix without one cannot use them
  const active = (await readState(l)).nix;
  const hook = active ? await hookForms(active) : undefined;
  if (hook && hook.remote === undefined) throw noBuildHook(l, hook.why);
  await makeDirs(path.dirname(l.knownHosts));
  const id = await prefixId(l);
  let remote = await probe(l, b, id);
  if (!remote && o.bootstrap) {
    const { bootstrapOverSsh } = await import('./bootstrap.ts');
    await bootstrapOverSsh(l, b, await readState(l), o.progress ?? process.stderr, bootstrapLine(l));
    remote = await probe(l, b, id);
  }
  if (!remote) throw builderHasNoNix(l, b);
  if (remote.storeDir !== l.storeDir) throw builderStoreDirDiffers(l, b, remote.storeDir);
  if (remote.system !== b.system) throw builderSystemDiffers(b, remote.system);
  return withLock(l.lockFile, { what: `relonix builder add in ${l.prefix}` }, async () => {
    const others = (await readBuilders(l)).filter((x) => x.url !== b.url);
    await writeBuilders(l, [...others, b]);
    return b;
  });
}

/** Removes the builder of that address; an address the prefix does not have is refused. */
export async function removeBuilder(l: Layout, url: string): Promise<Builder> {
  const want = parseBuilderUrl(url).url;
  return withLock(l.lockFile, { what: `relonix builder remove in ${l.prefix}` }, async () => {
    const all = await readBuilders(l);
    const gone = all.find((b) => b.url === want);
    if (!gone) {
      throw noSuchBuilder(l, want, all);
    }
    await writeBuilders(
      l,
      all.filter((b) => b !== gone),
    );
    return gone;
  });
}

function bootstrapLine(l: Layout): string {
  const storeDir = l.storeDir === defaultStoreDir(l.prefix) ? '' : ` --store-dir ${shQuote(l.storeDir)}`;
  return `npx relonix bootstrap --prefix ${shQuote(l.prefix)}${storeDir}`;
}

/** The --key file is not there. */
export function noSshKey(key: string): RelonixError {
  return new RelonixError(`the key ${key} does not exist`, {
    kind: 'usage',
    hint: 'pass the private key that the builder accepts (ssh-keygen -t ed25519 -f FILE makes one)',
  });
}

/** The builder's Nix has another store dir than this prefix. */
export function builderStoreDirDiffers(l: Layout, b: Builder, remoteStoreDir: string): RelonixError {
  return new RelonixError(`the Nix at ${l.prefix} on ${b.url} has the store ${remoteStoreDir}, not ${l.storeDir}: a builder must have the same store dir`, {
    kind: 'preflight',
    hint: `bootstrap the prefix there again with this store dir: ${bootstrapLine(l)}`,
  });
}

/** The builder is another system than the one it was added for. */
export function builderSystemDiffers(b: Builder, remoteSystem: string): RelonixError {
  return new RelonixError(`${b.url} is ${remoteSystem}, not ${b.system}`, {
    kind: 'preflight',
    hint: `pass --system ${remoteSystem} if it is to build ${remoteSystem} derivations, or add a builder that is ${b.system}`,
  });
}

/** relonix builder remove of an address the prefix does not have. */
export function noSuchBuilder(l: Layout, want: string, all: Builder[]): RelonixError {
  return new RelonixError(`${l.prefix} has no builder ${want}`, {
    kind: 'usage',
    hint: all.length ? `its builders: ${all.map((b) => b.url).join(', ')} (relonix builder list)` : 'it has none (relonix builder add adds one)',
  });
}

/** The builder has no relonix Nix at the prefix's path. */
export function builderHasNoNix(l: Layout, b: Builder): RelonixError {
  return new RelonixError(`${b.url} has no relonix Nix at ${l.prefix} (${path.join(l.binDir, 'nix-instantiate')} is not there, or cannot run)`, {
    kind: 'preflight',
    hint: `on ${b.host}, as ${b.user ?? 'that user'}, run: ${bootstrapLine(l)} (then relonix builder add again), or add --bootstrap to do it over ssh`,
  });
}

/** A builder that is this very prefix would build for ever, waiting on itself. */
export function builderIsItself(l: Layout, b: Builder): RelonixError {
  return new RelonixError(`${b.url} reaches this same prefix ${l.prefix} (its state has this prefix's identity): a prefix cannot be its own builder`, {
    kind: 'usage',
    hint: 'add a builder on another host (or another container) that has its own prefix at this path',
  });
}

const ID_MARK = 'relonix-prefix-id:';

/**
 * The store dir and system of the remote prefix's Nix, as its own wrapper reports them; undefined
 * when the builder has no Nix at the prefix. A builder whose state has this prefix's identity `id`
 * is this prefix itself, and refused.
 */
async function probe(l: Layout, b: Builder, id: string | undefined): Promise<{ storeDir: string; system: string } | undefined> {
  const tool = path.join(l.binDir, 'nix-instantiate');
  const readId = `printf '%s\\n' "${ID_MARK}$(grep -o '"id": *"[0-9a-f]*"' ${shQuote(l.stateFile)} 2>/dev/null | head -n 1)"`;
  const r = await sshRun(l, b, `${readId}; exec ${shQuote(tool)} --eval --strict --json -E '[ builtins.storeDir builtins.currentSystem ]'`);
  if (r.code === 255) throw sshFailure(l, b, r);
  const [first = '', ...rest] = r.stdout.split('\n');
  const remoteId = /"([0-9a-f]+)"/.exec(first.startsWith(ID_MARK) ? first : '')?.[1];
  if (id && remoteId === id) throw builderIsItself(l, b);
  if (r.code === 127 || r.code === 126) return undefined;
  let v: unknown;
  try {
    v = r.code === 0 ? JSON.parse(rest.join('\n')) : undefined;
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string') {
    throw builderNixSilent(l, b, r);
  }
  return { storeDir: v[0], system: v[1] };
}

/** The builder's Nix at the prefix ran, and did not say its store dir and system. */
export function builderNixSilent(l: Layout, b: Builder, r: Pick<ToolResult, 'code' | 'all'>): RelonixError {
  return new RelonixError(`the Nix at ${l.prefix} on ${b.url} did not answer (exit ${r.code}):\n${r.all.trim().split('\n').slice(-10).join('\n')}`, {
    kind: 'preflight',
    hint: `on ${b.host}, relonix status --prefix ${shQuote(l.prefix)} says what is wrong; bootstrapping again repairs it: ${bootstrapLine(l)}`,
  });
}

/** Writes every file the builders are made into; with none left, removes them. */
async function writeBuilders(l: Layout, builders: Builder[]): Promise<void> {
  const conf = await fs.readFile(l.confFile, 'utf8').catch(() => '');
  let next: string;
  if (builders.length) {
    await writeFileAtomic(l.buildersFile, `${JSON.stringify({ builders }, null, 2)}\n`);
    await writeFileAtomic(l.machinesFile, machinesText(l, builders));
    await writeFileAtomic(l.sshConfig, sshConfigText(l, builders));
    next = mergeNixConf(conf, buildersBlock(l), BUILDERS_BLOCK);
  } else {
    for (const f of [l.sshConfig, l.machinesFile, l.buildersFile]) await fs.rm(f, { force: true });
    next = dropNixConfBlock(conf, BUILDERS_BLOCK);
  }
  // the build hook comes and goes with the builders (the builders file is written or gone by now)
  const s = await readState(l);
  next = withBuildHook(next, await buildHookSetting(l, s.nix, next));
  if (next !== conf) await writeFileAtomic(l.confFile, next);
  // NIX_SSHOPTS comes and goes with the ssh config; a prefix not bootstrapped yet gets it at bootstrap
  if (s.nix) await writeEnvScripts(l, s.nix, s.cacert);
}
