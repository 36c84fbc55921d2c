// The prefix as relonix doctor sees it: what its bootstrap finished, whether its Nix verifies now
// (bootstrap's verify stage: it runs, builds, and loads only libraries from the store), and the CA
// bundle its Nix is pointed at.
import { promises as fs } from 'node:fs';
import type { VerifyResult } from '../bootstrap/stage.ts';
import { applyVerify } from '../bootstrap/verify-nix.ts';
import { nixVariables } from '../prefix/environment.ts';
import type { Layout } from '../prefix/layout.ts';
import { type BootstrapState, isBootstrapped, readState } from '../prefix/state.ts';
import { causeChain, errnoCode, errorMessage, RelonixError } from '../util/errors.ts';
import { type LockOwner, lockHolder } from '../util/lock.ts';
import type { HostFacts } from './facts.ts';
import { type Finding, ok, problem, warning } from './finding.ts';

export interface PrefixFacts {
  /** the state file, or why it could not be read (and the errno, when the file system said it) */
  state: BootstrapState | { unreadable: string; code?: string };
  bootstrapped: boolean;
  /** a live relonix that holds the prefix's lock: verifying then would race it */
  holder?: LockOwner;
  /** the prefix or its store dir belongs to another uid: its Nix is not run as this one */
  foreign?: { dir: string; owner: number; me: number };
  verify?: { ok: true; result: VerifyResult } | { ok: false; message: string; hint?: string };
  /** the CA bundle NIX_SSL_CERT_FILE names for this prefix, and the certificates in it */
  ca?: { file: string; certificates: number };
}

async function certificatesIn(file: string): Promise<number> {
  try {
    return (await fs.readFile(file, 'utf8')).match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  } catch {
    return 0;
  }
}

/** The first of `dirs` that belongs to another uid than this process's, and whose it is. */
async function foreignOwner(dirs: string[]): Promise<PrefixFacts['foreign']> {
  const me = process.getuid?.() ?? -1;
  for (const dir of dirs) {
    const st = await fs.stat(dir).catch(() => undefined);
    if (st && st.uid !== me) return { dir, owner: st.uid, me };
  }
  return undefined;
}

export async function gatherPrefixFacts(l: Layout, progress: (text: string) => void): Promise<PrefixFacts> {
  // readState takes a file where the prefix should be for no state at all; here it is said
  const st = await fs.stat(l.prefix).catch(() => undefined);
  if (st && !st.isDirectory()) return { state: { unreadable: `${l.prefix} is not a directory`, code: 'ENOTDIR' }, bootstrapped: false };
  let state: BootstrapState;
  try {
    state = await readState(l);
  } catch (e) {
    const code = causeChain(e)
      .map(errnoCode)
      .find((c) => c !== undefined);
    return { state: { unreadable: errorMessage(e), ...(code ? { code } : {}) }, bootstrapped: false };
  }
  const bootstrapped = await isBootstrapped(l, state);
  const f: PrefixFacts = { state, bootstrapped };
  if (!bootstrapped || !state.nix) return f;
  const file = nixVariables(l, { nix: state.nix, cacert: state.cacert }).NIX_SSL_CERT_FILE!;
  f.ca = { file, certificates: await certificatesIn(file) };
  f.holder = await lockHolder(l.lockFile);
  f.foreign = await foreignOwner([l.prefix, l.storeDir]);
  if (f.holder || f.foreign) return f;
  try {
    progress(`verifying the Nix of ${l.prefix}`);
    f.verify = { ok: true, result: await applyVerify(l, state.nix, state.cacert, progress, { contents: false, rebuild: true }) };
  } catch (e) {
    f.verify = { ok: false, message: errorMessage(e), hint: e instanceof RelonixError ? e.hint : undefined };
  }
  return f;
}

const bootstrapLine = (l: Layout) => `relonix bootstrap${l.prefix === '/tmp/nix' ? '' : ` --prefix ${l.prefix}`}`;

export function judgePrefix(l: Layout, p: PrefixFacts, hostProblems: string[]): Finding {
  if ('unreadable' in p.state) {
    // only a state file that is there and broken is a reason to start the prefix again
    const { unreadable, code } = p.state;
    if (code === 'ENOTDIR')
      return problem('prefix', `${l.prefix} holds no prefix: ${unreadable}`, 'pass --prefix a directory: one a bootstrap made, or will make');
    if (code === 'EACCES' || code === 'EPERM')
      return problem('prefix', `the state of ${l.prefix} cannot be read by this uid: ${unreadable}`, 'run relonix doctor as the uid that owns the prefix');
    return problem('prefix', `the state of ${l.prefix} cannot be read: ${unreadable}`, `remove ${l.prefix} and bootstrap again (${bootstrapLine(l)})`);
  }
  const s = p.state;
  const done = Object.keys(s.stages);
  const facts = { prefix: l.prefix, storeDir: l.storeDir, stages: done, nix: s.nix ?? null, bootstrapped: p.bootstrapped };
  if (!p.bootstrapped) {
    if (!done.length) return ok('prefix', `${l.prefix} holds no bootstrap yet: ${bootstrapLine(l)} makes one`, facts);
    if (s.stages.verify)
      return warning('prefix', `${l.prefix} was bootstrapped, but its Nix ${s.nix ?? ''} is gone (a wiped store)`, `${bootstrapLine(l)} again`, facts);
    return warning('prefix', `the bootstrap of ${l.prefix} stopped after ${done.join(', ')}`, `${bootstrapLine(l)} resumes where it stopped`, facts);
  }
  if (p.foreign) {
    const { dir, owner, me } = p.foreign;
    return warning(
      'prefix',
      `${l.prefix} is bootstrapped, but ${dir} belongs to uid ${owner}: its Nix was not run as uid ${me}, which would run another user's programs as this uid and leave files of this uid in their store`,
      `run relonix doctor as uid ${owner}, its owner, to verify it`,
      { ...facts, owner, uid: me },
    );
  }
  if (p.holder) {
    const h = p.holder;
    return warning(
      'prefix',
      `${l.prefix} is bootstrapped; another relonix (pid ${h.pid}, ${h.what}, since ${h.since}) holds it, so its Nix was not verified now`,
      'run relonix doctor again when it is done',
      facts,
    );
  }
  const v = p.verify;
  if (v?.ok) {
    const r = v.result;
    return ok('prefix', `${l.prefix}: ${r.version} verifies (store consistent, a check build rebuilt, ${r.libraries} libraries all from ${l.storeDir})`, {
      ...facts,
      version: r.version,
    });
  }
  const likely = hostProblems.length ? `the problems found above (${hostProblems.join(', ')}) are the likely cause; fix them first` : v?.hint;
  return problem(
    'prefix',
    `the Nix of ${l.prefix} does not verify: ${v?.message ?? 'not run'}`,
    likely ?? `remove ${l.prefix} and ${bootstrapLine(l)} again`,
    facts,
  );
}

export function judgeCaBundle(p: PrefixFacts, host: Pick<HostFacts, 'ca'>): Finding {
  const roots = `relonix's own downloads use Node's ${host.ca.nodeRoots} built-in roots`;
  const facts = { nodeRoots: host.ca.nodeRoots, nodeExtra: host.ca.extra ?? null, nixBundle: p.ca ?? null };
  const extra = host.ca.extra;
  if (extra && !extra.readable) {
    return warning(
      'ca-bundle',
      `NODE_EXTRA_CA_CERTS names ${extra.file}, which cannot be read: Node ignores it, and a proxy's certificate will not be trusted`,
      'point NODE_EXTRA_CA_CERTS at a readable PEM file, or unset it',
      facts,
    );
  }
  if (!p.ca) return ok('ca-bundle', `the bootstrap installs the CA bundle that comes with Nix; ${roots}`, facts);
  if (p.ca.certificates === 0) {
    return problem(
      'ca-bundle',
      `${p.ca.file} (NIX_SSL_CERT_FILE) holds no certificates: Nix's HTTPS substituters, fetchers and channels fail`,
      "put a CA bundle in the prefix's profile (relonix run -- nix-env -i <a cacert store path>), or remove the prefix and bootstrap again",
      facts,
    );
  }
  return ok('ca-bundle', `Nix uses ${p.ca.file} (${p.ca.certificates} certificates); ${roots}`, facts);
}
