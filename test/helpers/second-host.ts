// A second host for a bundle: a private mount namespace where the build host's prefix, store and Nix
// are out of sight (fresh tmpfs over /tmp and /var/tmp, the host's Nix behind tripwires), the bundle
// copied in, and a uid with no passwd entry running a script with a PATH that holds only the tools
// the bundle may use: coreutils', Debian's tar, gzip and openssl, or busybox alone (as /bin/sh too). No
// node on it. The script prints sections (`@@name` starts one), which the test reads back.
import { spawn } from 'node:child_process';
import { collect, NOBODY_UID, type RunResult } from './cli.ts';
import { withoutHostNix } from './hide-nix.ts';

/** Where the bundle and the tools live on the second host; HOST/w is writable by the uid. */
export const HOST = '/var/tmp/host';
/** The bundle, on the second host. */
export const BUNDLE = `${HOST}/app.run`;

/** What the bundle needs, and what the test scripts use to look around. */
const TOOLS = 'sh tail dd tar gzip sha256sum openssl mkdir rmdir mv rm chmod ln ls sleep cat readlink grep head setsid';

export interface SecondHost {
  /** the bundle file to copy in */
  bundle: string;
  /** busybox-static's binary: busybox alone is the host's sh and tools */
  busybox?: string;
  /** run as root after the tools are in place, before the uid's script */
  before?: string;
  /** the uid's script */
  script: string;
  /** run as root after the uid's script, with the host's full PATH */
  after?: string;
}

const SETUP = `set -e
bundle=$1 busybox=$2
exec 3< "$bundle"
[ -z "$busybox" ] || exec 4< "$busybox"
mount -t tmpfs -o mode=1777 relonix-second-host /tmp
mount -t tmpfs -o mode=1777 relonix-second-host /var/tmp
mkdir -m 755 ${HOST} ${HOST}/tools ${HOST}/shim
mkdir -m 1777 ${HOST}/w
cat <&3 > ${BUNDLE}
chmod 755 ${BUNDLE}
if [ -n "$busybox" ]; then
  cat <&4 > ${HOST}/tools/busybox
  chmod 755 ${HOST}/tools/busybox
  ${HOST}/tools/busybox --install -s ${HOST}/tools
  mount --bind ${HOST}/tools/busybox /bin/sh
else
  for t in ${TOOLS}; do ln -s "$(command -v $t)" ${HOST}/tools/$t; done
fi
cd ${HOST}/w
eval "$3"
set +e
setpriv --reuid=${NOBODY_UID} --regid=${NOBODY_UID} --clear-groups env -i PATH=${HOST}/tools /bin/sh -c "$4"
echo "@@code $?"
eval "$5"
`;

/** Runs the script on a second host; stdout holds its sections. */
export function onSecondHost(h: SecondHost): Promise<RunResult> {
  const [cmd, ...argv] = withoutHostNix(['sh', '-c', SETUP, 'second-host', h.bundle, h.busybox ?? '', h.before ?? '', h.script, h.after ?? '']);
  return collect(spawn(cmd!, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }));
}

/** The sections of a second host's stdout: `@@name rest` starts section name, whose first line is rest. */
export function sections(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  let name = '';
  for (const line of stdout.split('\n')) {
    const m = /^@@(\S+) ?(.*)$/.exec(line);
    if (m) {
      name = m[1]!;
      out.set(name, m[2] ?? '');
    } else if (name) out.set(name, `${out.get(name)}\n${line}`);
  }
  for (const [k, v] of out) out.set(k, v.replace(/^\n/, '').trimEnd());
  return out;
}

/** A shim in HOST/shim for each tool: it notes its call in HOST/w/calls, then runs the tool. */
export function shims(tools: string[], extra = ''): string {
  return tools
    .map(
      (t) =>
        `printf '#!${HOST}/tools/sh\\necho "${t} $*" >> ${HOST}/w/calls\\n${extra}exec ${HOST}/tools/${t} "$@"\\n' > ${HOST}/shim/${t}; chmod 755 ${HOST}/shim/${t}`,
    )
    .join('\n');
}
