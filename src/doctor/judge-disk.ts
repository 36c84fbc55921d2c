// Pure: the prefix's and the store dir's places, the room on their filesystem, $TMPDIR, and the
// store dir's length → findings. The thresholds are bootstrap's preflight's own.

import { type Place, PREFIX, type Problem, symlinked, tooFewInodes, tooLittleSpace, unrunnable, unwritable } from '../bootstrap/place-problems.ts';
import { estimateNeed, INODES_NEEDED } from '../bootstrap/stages/preflight.ts';
import { MAX_PREFIX_BYTES, pathProblems } from '../prefix/guard.ts';
import { size } from '../util/format.ts';
import { nearestMount, type PlaceFacts, placeOf } from './facts.ts';
import { type Finding, ok, problem, warning } from './finding.ts';

/** Free room below which a bootstrapped prefix warns: a few packages' builds and their sources. */
const BUILD_ROOM = 2 ** 30;

/** Nix's store dir, whose length a store dir needs for binaries built for it to be rewritten in place. */
const NIX_STORE = '/nix/store';

/** What a place allows, for --json. */
function placeFacts(f: PlaceFacts): Record<string, unknown> {
  return {
    dir: f.dir,
    exists: f.exists,
    checked: f.at,
    mount: f.mount ?? null,
    writable: f.tried?.writable ?? null,
    executable: f.tried?.executable ?? null,
  };
}

/**
 * The prefix or the store dir: Nix refuses a store dir reached through a symlink, and nothing works
 * on a read-only or noexec mount. The problems are preflight's own (bootstrap/place-problems.ts).
 */
export function judgePlace(id: string, place: Place, f: PlaceFacts): Finding {
  const facts = placeFacts(f);
  const where = placeOf(f);
  const refuse = (p: Problem) => problem(id, p.message, p.hint, facts);
  // a path Nix cannot live at, as bootstrap refuses it before anything else
  const [unusable] = pathProblems(place === PREFIX ? 'prefix' : 'store dir', f.dir, place === PREFIX ? MAX_PREFIX_BYTES : undefined);
  if (unusable) return refuse(unusable);
  if (f.blocked) return refuse(unwritable(place, f.dir, f.blocked));
  if (f.real !== f.at) return refuse(symlinked(place, f.dir, `${f.real}${f.dir.slice(f.at.length)}`));
  if (f.mount?.readOnly) return refuse(unwritable(place, where, `it is on a read-only mount, ${nearestMount(f)}`));
  if (f.tried && !f.tried.writable) return refuse(unwritable(place, where, f.tried.writeError ?? 'permission denied'));
  if (f.foreign) {
    const { owner, me } = f.foreign;
    return warning(
      id,
      `${place.what} ${where} belongs to uid ${owner}, not to this uid (${me}): relonix run as uid ${me} would leave files of uid ${me} in it, so nothing was run there`,
      `run relonix doctor, and every relonix command for it, as uid ${owner}, its owner`,
      { ...facts, owner, uid: me },
    );
  }
  if (f.mount?.noexec) return refuse(unrunnable(place, where, `it is on a noexec mount, ${nearestMount(f)}`));
  if (f.tried && !f.tried.executable) return refuse(unrunnable(place, where, f.tried.execError ?? 'the probe did not run'));
  const suid = f.mount?.nosuid ? ', nosuid (harmless: nothing in a prefix is setuid)' : '';
  return ok(id, `${place.what} ${where}: writable, programs run${suid}; on ${nearestMount(f)}`, facts);
}

/** Room on the prefix's filesystem: what a bootstrap needs before one (preflight's limits), room for builds after. */
export function judgeSpace(f: PlaceFacts, bootstrapped: boolean): Finding {
  if (!f.space) return warning('space', `the free space under ${f.at} could not be read`, 'check it with df -h and df -i');
  const { freeBytes, freeInodes, fsType } = f.space;
  const need = estimateNeed(undefined);
  const facts = { dir: f.at, fsType, freeBytes, freeInodes: freeInodes ?? null, needBytes: need, needInodes: INODES_NEEDED };
  const have = `${size(freeBytes)}${freeInodes === undefined ? '' : `, ${freeInodes} inodes`} free on ${f.at} (${fsType})`;
  if (!bootstrapped) {
    const short = freeBytes < need ? tooLittleSpace(f.at, fsType, freeBytes, need) : undefined;
    const few = freeInodes !== undefined && freeInodes < INODES_NEEDED ? tooFewInodes(f.at, fsType, freeInodes, INODES_NEEDED) : undefined;
    const p = short ?? few;
    if (p) return problem('space', p.message, p.hint, facts);
    return ok('space', `${have}: enough for a bootstrap (about ${size(need)})`, facts);
  }
  if (freeBytes < BUILD_ROOM || (freeInodes !== undefined && freeInodes < INODES_NEEDED)) {
    return warning(
      'space',
      `${have}: little room for builds and restores`,
      'free some space there, or choose a prefix on a bigger filesystem (--prefix DIR); relonix run -- nix-collect-garbage removes what no profile uses',
      facts,
    );
  }
  return ok('space', have, facts);
}

/**
 * $TMPDIR: a prefix under it (the default is /tmp/nix) needs what a bootstrap needs, and Nix's
 * builds run in directories under it, executing what configure scripts compile there.
 */
export function judgeTmp(tmp: PlaceFacts, prefix: PlaceFacts): Finding {
  const facts = { ...placeFacts(tmp), freeBytes: tmp.space?.freeBytes ?? null, sameFilesystemAsPrefix: tmp.dev === prefix.dev };
  const fix = `export TMPDIR=${prefix.dir}/tmp (make it first), or another directory on a filesystem mounted without noexec`;
  if (tmp.mount?.noexec || (tmp.tried && !tmp.tried.executable)) {
    return warning(
      'tmp',
      `$TMPDIR (${tmp.dir}) is on a noexec mount, ${nearestMount(tmp)}: Nix's builds run there, and configure scripts run what they compile`,
      fix,
      facts,
    );
  }
  if (!tmp.space) return ok('tmp', `$TMPDIR is ${tmp.dir}`, facts);
  const need = estimateNeed(undefined);
  const have = `$TMPDIR (${tmp.dir}) has ${size(tmp.space.freeBytes)} free (${tmp.space.fsType})`;
  if (tmp.dev === prefix.dev) return ok('tmp', `${have}, on the prefix's filesystem (see space)`, facts);
  if (tmp.space.freeBytes < need) {
    return warning(
      'tmp',
      `${have}, less than a bootstrap needs (about ${size(need)}): a prefix under it (the default /tmp/nix) would not fit, and large builds stage their work there`,
      `keep the prefix elsewhere (--prefix DIR); for builds, ${fix}`,
      facts,
    );
  }
  return ok('tmp', `${have}: room for a bootstrap (about ${size(need)}) and builds`, facts);
}

export function judgeStoreDirLength(storeDir: string): Finding {
  const facts = { storeDir, length: storeDir.length, nixStoreLength: NIX_STORE.length };
  if (storeDir.length === NIX_STORE.length) {
    return ok(
      'store-dir-length',
      `${storeDir} is as long as ${NIX_STORE}: what cache.nixos.org built can be rewritten in place for it (relonix translate)`,
      facts,
    );
  }
  return warning(
    'store-dir-length',
    `${storeDir} is ${storeDir.length} bytes, ${NIX_STORE} ${NIX_STORE.length}: nothing cache.nixos.org built can be used, so every package is built here`,
    `bootstrap a prefix with a store dir of ${NIX_STORE.length} bytes to use upstream's binaries through relonix translate, e.g. --store-dir /tmp/store`,
    facts,
  );
}
