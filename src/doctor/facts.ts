// What relonix doctor reads off the host and the prefix's directories, before judging any of it:
// every probe is here, and each reads what bootstrap's preflight, relonix build and the lock
// code read, through the same functions.
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { HostTool } from '../codec/host-tools.ts';
import { type DecoderFacts, probeHostDecoder } from '../codec/probe.ts';
import { type CgroupLimits, readCgroupLimits } from '../host/cgroup.ts';
import { type DirFacts, existingAncestor, probeDir, type SpaceFacts, spaceFacts } from '../host/filesystem.ts';
import { flagsAt, type MountFlags, readMounts } from '../host/mounts.ts';
import { passwdName } from '../host/passwd.ts';
import { probeReaper, type ReaperFacts } from '../host/reaper.ts';
import { type ProbeOutcome, probeSyscalls, readSeccompStatus, type SeccompStatus } from '../host/syscalls.ts';
import type { Layout } from '../prefix/layout.ts';
import { errorMessage } from '../util/errors.ts';
import { exists } from '../util/fs.ts';
import { packageRoot } from '../util/self.ts';

/** A directory relonix will write: where it is, or where it would be made, and what that place allows. */
export interface PlaceFacts {
  dir: string;
  exists: boolean;
  /** the directory examined: `dir`, or its nearest ancestor that exists */
  at: string;
  /** `at` with its symlinks resolved */
  real: string;
  mount?: MountFlags;
  /** writing and running a script in `dir` when it exists and this uid may write there; else what permissions and mount flags say */
  tried?: DirFacts;
  space?: SpaceFacts;
  dev?: number;
  /** what keeps `dir` from being one at all: a file where it or a parent should be, a parent this uid cannot enter */
  blocked?: string;
  /** `dir` exists and belongs to another uid than this process's: relonix runs nothing of its own in it */
  foreign?: { owner: number; me: number };
}

export interface HostFacts {
  prefix: PlaceFacts;
  storeDir: PlaceFacts;
  tmp: PlaceFacts;
  syscalls: ProbeOutcome;
  seccomp: SeccompStatus;
  /** /proc/sys/user/max_user_namespaces and Debian's kernel.unprivileged_userns_clone, where they exist */
  usernsSysctl: { max?: number; unprivileged?: number };
  cgroup: CgroupLimits;
  /** CPUs this process may run on (the affinity mask) and CPUs the machine has */
  affinity: number;
  machineCpus: number;
  reaper: ReaperFacts;
  kernel: string;
  uid: number;
  userName?: string;
  node: string;
  ca: { nodeRoots: number; extra?: { file: string; readable: boolean } };
  /** the overlay for hosts like these, when this relonix carries patches/ */
  overlay?: string;
  /** the host's xz and zstd, and whether each decodes here */
  decoders: Record<HostTool, DecoderFacts>;
}

const noValue = () => undefined;

/** The sticky bit of a mode: in such a directory (/tmp) only a file's owner may rename or remove it. */
const STICKY = 0o1000;

/** Whether this uid may read (R_OK) or write (W_OK) `file`. */
const may = (file: string, mode: number): Promise<boolean> =>
  fs.access(file, mode).then(
    () => true,
    () => false,
  );

/** Whether `dir` is a directory there, and what stands in its way when it cannot be one. */
async function reach(dir: string, me: number): Promise<{ present: boolean; blocked?: string }> {
  try {
    if ((await fs.stat(dir)).isDirectory()) return { present: true };
    return { present: false, blocked: `${dir} is a file, not a directory` };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { present: (await fs.lstat(dir).catch(noValue)) !== undefined };
    if (code === 'ENOTDIR') return { present: false, blocked: `a parent of ${dir} is a file, not a directory` };
    return { present: false, blocked: `uid ${me} cannot reach ${dir}: ${errorMessage(e)}` };
  }
}

/** Where a directory is, or would be made, and what its mount and a real write and run allow there. */
async function place(dir: string): Promise<PlaceFacts> {
  const me = process.getuid?.() ?? -1;
  const { present, blocked } = await reach(dir, me);
  const at = present ? dir : await existingAncestor(dir);
  const real = await fs.realpath(at).catch(() => at);
  const f: PlaceFacts = { dir, exists: present, at, real, mount: flagsAt(real, readMounts()), ...(blocked ? { blocked } : {}) };
  f.space = await spaceFacts(at).catch(noValue);
  const st = await fs.stat(at).catch(noValue);
  f.dev = st?.dev;
  if (present && st && st.uid !== me) f.foreign = { owner: st.uid, me };
  // a script is written and run only in the directory itself (the prefix, $TMPDIR), never in a
  // parent it would be made in, nor in another user's directory (not sticky), whose owner could
  // swap it before it runs: there, the permissions and the mount's flags say it
  const writable = await may(at, fs.constants.W_OK);
  if (present && writable && !blocked && (!f.foreign || (st!.mode & STICKY) !== 0)) f.tried = await probeDir(at, at);
  else f.tried = { real, writable, writeError: writable ? undefined : `${at} is not writable by uid ${me}`, executable: !f.mount?.noexec };
  return f;
}

function readNumber(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** patches/restricted-host.nix beside this relonix (a checkout, or the npm package), when it is there. */
async function overlayFile(): Promise<string | undefined> {
  const f = path.join(packageRoot(), 'patches', 'restricted-host.nix');
  return (await exists(f)) ? f : undefined;
}

async function caFacts(): Promise<HostFacts['ca']> {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  const readable = file ? await may(file, fs.constants.R_OK) : false;
  return { nodeRoots: tls.rootCertificates.length, extra: file ? { file, readable } : undefined };
}

export async function gatherHostFacts(l: Layout): Promise<HostFacts> {
  const tmpDir = os.tmpdir();
  const [prefix, storeDir, tmp] = await Promise.all([place(l.prefix), place(l.storeDir), place(tmpDir)]);
  // the probe runs from a private directory where programs may run: the prefix's own (when it is
  // this uid's), else $TMPDIR
  const probeDirs = [...(prefix.exists && !prefix.foreign ? [l.prefix] : []), tmpDir];
  const [syscalls, cgroup, reaper, ca, overlay, xz, zstd] = await Promise.all([
    probeSyscalls(probeDirs),
    readCgroupLimits(),
    probeReaper(),
    caFacts(),
    overlayFile(),
    probeHostDecoder('xz'),
    probeHostDecoder('zstd'),
  ]);
  return {
    prefix,
    storeDir,
    tmp,
    syscalls,
    seccomp: readSeccompStatus(),
    usernsSysctl: { max: readNumber('/proc/sys/user/max_user_namespaces'), unprivileged: readNumber('/proc/sys/kernel/unprivileged_userns_clone') },
    cgroup,
    affinity: os.availableParallelism(),
    machineCpus: os.cpus().length,
    reaper,
    kernel: os.release(),
    uid: process.getuid?.() ?? -1,
    userName: passwdName(),
    node: process.versions.node,
    ca,
    overlay,
    decoders: { xz, zstd },
  };
}

export const placeOf = (f: PlaceFacts): string => (f.exists ? f.dir : `${f.dir} (not made yet; ${f.at} exists)`);

export const nearestMount = (f: PlaceFacts): string => (f.mount ? `${f.mount.mountPoint} (${f.mount.fsType})` : path.dirname(f.real));
