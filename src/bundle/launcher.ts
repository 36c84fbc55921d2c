// The head of a bundle: a POSIX sh script that unpacks the payload behind it once and execs the
// entry. It runs on dash, bash and busybox ash, and calls only what coreutils and busybox both have.
// The payload starts at a 4 KiB boundary, where `dd bs=4096 skip=N count=0` moves a file offset.
import { shQuote } from '../util/shell.ts';

/** The file in a run dir that says which payload was unpacked there, and for which dir: written last. */
export const MARKER = '.relonix-bundle';
/** The file in the payload that lists where the run dir is named, for RELONIX_RUN_DIR. */
export const PATCHES = '.relonix-patches';
/** The payload starts at a multiple of this. */
export const ALIGN = 4096;
/** What the launcher needs on the host, besides sh (a tail or a dd will do). */
export const HOST_TOOLS = 'sh, dd or tail, tar, gzip and sha256sum';

export interface LauncherValues {
  /** sha256 (hex) of the payload */
  sha256: string;
  /** what the bundle is called: the entry's name */
  name: string;
  runDir: string;
  /** the entry, relative to the run dir */
  entry: string;
  /** the store dir the closure was built for */
  storeDir: string;
  /** human words: "3 store paths, 4.1 MB" and "1.9 MB" */
  closure: string;
  /** the Nix system the closure was built for, x86_64-linux */
  system: string;
  payload: string;
  /** store path names, one a line */
  paths: string[];
  /** why the bundle cannot go into another dir than runDir, if it cannot */
  fixed?: string;
  version: string;
}

// Placeholders in the script below: @NAME@ is replaced by a quoted value (or a number for @SKIP@). It is
// a raw string, so the shell's backslashes stay as written; \${ is how the shell's own ${ is written in it.
const SCRIPT = String.raw`#!/bin/sh
# A relonix bundle of @TITLE@: this POSIX sh launcher, then a gzip'd tar of a Nix closure
# rewritten for one run dir. Needs only ${HOST_TOOLS} (coreutils, or busybox alone).
#   ./THIS ARGS...         runs the entry: the first run unpacks, the next ones start it at once
#   ./THIS --bundle-info   says what it holds, without unpacking anything
#   RELONIX_RUN_DIR=DIR    unpacks into DIR instead: any new dir of as many bytes as the default
RB_SHA=@SHA@
RB_DIR=@DIR@
RB_ENTRY=@ENTRY@
rb_d=\${RELONIX_RUN_DIR:-$RB_DIR}
if [ "\${1-}" != --bundle-info ] && [ -f "$rb_d/${MARKER}" ] && [ ! -h "$rb_d" ] && [ -O "$rb_d" ] && [ -x "$rb_d/$RB_ENTRY" ] &&
  read -r rb_m < "$rb_d/${MARKER}" && [ "$rb_m" = "$RB_SHA $rb_d" ]; then
  exec "$rb_d/$RB_ENTRY" "$@"
fi
RB_SKIP=@SKIP@
RB_BUILT=@BUILT@
RB_CLOSURE=@CLOSURE@
RB_SYSTEM=@SYSTEM@
RB_PAYLOAD=@PAYLOAD@
RB_FIXED=@FIXED@
RB_VERSION=@VERSION@
RB_PATHS=@PATHS@
rb_tmp= rb_locked= rb_told= rb_lock=$rb_d.lock

rb_say() { printf 'relonix bundle: %s\n' "$1" >&2; }

# a refusal: what went wrong and the fix, then 126 (127: a missing tool), as a shell reports a
# program it cannot run
rb_refuse() {
  rb_say "error: $2"
  [ -z "\${3-}" ] || printf '  fix: %s\n' "$3" >&2
  rb_cleanup
  exit "$1"
}

# removes a dir this launcher made: only a real directory this uid owns, never through a symlink
# (chmod -R follows one named on its command line) and never another user's files
rb_rmtree() {
  [ -d "$1" ] && [ ! -h "$1" ] && [ -O "$1" ] || return 0
  chmod -R u+w "$1" 2>/dev/null
  rm -rf "$1"
}

rb_cleanup() {
  [ -z "$rb_tmp" ] || rb_rmtree "$rb_tmp"
  [ -z "$rb_locked" ] || rm -f "$rb_lock"
  rb_tmp= rb_locked=
}

rb_info() {
  if [ -f "$rb_d/${MARKER}" ] && read -r rb_m < "$rb_d/${MARKER}" && [ "$rb_m" = "$RB_SHA $rb_d" ]; then
    rb_m='unpacked: a run starts the entry at once'
  else
    rb_m='not unpacked here yet: the first run unpacks it'
  fi
  printf '%s\n' "relonix bundle of @TITLE@ (made by relonix $RB_VERSION)" "entry:    $RB_ENTRY" \
    "closure:  $RB_CLOSURE, for $RB_SYSTEM, built for the store dir $RB_BUILT" "run dir:  $rb_d ($rb_m)" \
    "          RELONIX_RUN_DIR=DIR unpacks into another new dir of \${#RB_DIR} bytes" \
    "payload:  $RB_PAYLOAD (gzip'd tar), sha256 $RB_SHA" "needs:    ${HOST_TOOLS}" "store paths:" "$RB_PATHS"
}

# the uid that owns $1, in rb_uid
rb_owner() {
  set -- $(ls -ldn "$1" 2>/dev/null)
  rb_uid=\${3-unknown}
}

# whether $1 sits on a filesystem mounted noexec (its mount point in rb_mnt)
rb_noexec() {
  rb_p=$(cd -P -- "$1" 2>/dev/null && pwd -P) || return 1
  [ -r /proc/self/mountinfo ] || return 1
  rb_mnt= rb_o=
  while read -r rb_x rb_x rb_x rb_x rb_mp rb_mo rb_x; do
    case $rb_p/ in "\${rb_mp%/}"/*) [ "\${#rb_mp}" -lt "\${#rb_mnt}" ] || { rb_mnt=$rb_mp rb_o=$rb_mo; } ;; esac
  done < /proc/self/mountinfo
  case ,$rb_o, in *,noexec,*) return 0 ;; esac
  return 1
}

# a dir of the run dir's length this host could use instead, for the messages
rb_example() {
  for rb_b in /var/tmp/ /dev/shm/ /tmp/ "\${HOME:-/nonexistent}/"; do
    rb_n=$((\${#RB_DIR} - \${#rb_b}))
    [ "$rb_n" -ge 1 ] && [ "$rb_n" -le 64 ] && [ -d "$rb_b" ] && [ -w "$rb_b" ] || continue
    case $rb_b in *[!A-Za-z0-9._+/-]*) continue ;; esac
    rb_s=$RB_SHA
    while [ "\${#rb_s}" -gt "$rb_n" ]; do rb_s=\${rb_s%?}; done
    [ "$rb_b$rb_s" != "$rb_d" ] && [ ! -e "$rb_b$rb_s" ] && ! rb_noexec "$rb_b" || continue
    printf '%s' "$rb_b$rb_s"
    return
  done
  printf 'a path of %s bytes' "\${#RB_DIR}"
}

rb_fix() {
  if [ -n "$RB_FIXED" ]; then printf '%s' "$RB_FIXED"; return; fi
  printf 'set RELONIX_RUN_DIR to a new dir of %s bytes (as %s is) on a filesystem that allows exec, e.g. RELONIX_RUN_DIR=%s' \
    "\${#RB_DIR}" "$RB_DIR" "$(rb_example)"
}

rb_check_override() {
  case $rb_d in /*) ;; *) rb_refuse 126 "RELONIX_RUN_DIR=$rb_d is not an absolute path" "$(rb_fix)" ;; esac
  case $rb_d in *[!A-Za-z0-9._+/-]* | */ | *//* | */./* | */../* | */. | */..)
    rb_refuse 126 "RELONIX_RUN_DIR=$rb_d is not a plain path (letters, digits, '.', '_', '+', '-' and single slashes)" "$(rb_fix)" ;;
  esac
  [ "\${#rb_d}" -eq "\${#RB_DIR}" ] || rb_refuse 126 \
    "RELONIX_RUN_DIR=$rb_d is \${#rb_d} bytes; this bundle needs a dir of exactly \${#RB_DIR} (its files name one as long as $RB_DIR)" "$(rb_fix)"
  [ -z "$RB_FIXED" ] || rb_refuse 126 "this bundle unpacks only into $RB_DIR" "$RB_FIXED"
}

rb_tools() {
  rb_miss=
  for rb_t in tar gzip mkdir rmdir mv rm chmod ln ls sleep; do
    command -v "$rb_t" >/dev/null 2>&1 || rb_miss="$rb_miss $rb_t"
  done
  # openssl hashes several times faster where the CPU has SHA instructions; sha256sum is everywhere
  command -v openssl >/dev/null 2>&1 && rb_ossl=1 || rb_ossl=
  [ -n "$rb_ossl" ] || command -v sha256sum >/dev/null 2>&1 || rb_miss="$rb_miss sha256sum"
  if command -v dd >/dev/null 2>&1; then rb_cut=dd
  elif command -v tail >/dev/null 2>&1; then rb_cut=tail
  else rb_miss="$rb_miss dd(or tail)"; fi
  [ "$rb_d" = "$RB_DIR" ] || command -v dd >/dev/null 2>&1 || rb_miss="$rb_miss dd(for RELONIX_RUN_DIR)"
  [ -z "$rb_miss" ] || rb_refuse 127 "this host has no$rb_miss on PATH ($PATH); the bundle needs ${HOST_TOOLS}" \
    "install them: coreutils, tar and gzip, or busybox alone (busybox --install -s DIR, and DIR on PATH)"
}

# runs "$@" on the payload: dd moves the file offset that both share past the launcher, so the
# command reads the file itself; tail copies it through a pipe where there is no dd
rb_payload() {
  if [ "$rb_cut" = dd ]; then { dd bs=${ALIGN} skip="$((RB_SKIP / ${ALIGN}))" count=0 2>/dev/null && "$@"; } < "$rb_self"
  else tail -c +"$((RB_SKIP + 1))" "$rb_self" | "$@"; fi
}

rb_verify() {
  rb_sum=
  [ -z "$rb_ossl" ] || rb_sum=$(rb_payload openssl dgst -sha256 -r 2>/dev/null) || rb_sum=
  case \${rb_sum%% *} in *[!0-9a-f]* | '') rb_sum=$(rb_payload sha256sum) || rb_sum= ;; esac
  rb_sum=\${rb_sum%% *}
  [ -n "$rb_sum" ] || rb_refuse 127 "neither sha256sum nor openssl could hash the payload, so it cannot be checked" \
    'install coreutils (sha256sum) or busybox'
  [ "$rb_sum" = "$RB_SHA" ] || rb_refuse 126 \
    "$rb_self is damaged: its payload's sha256 is $rb_sum, not $RB_SHA (a truncated or altered copy); nothing was unpacked" \
    'copy or download the bundle again'
}

# 0: the run dir holds this bundle, ready; 1: there is none; anything else is refused
rb_existing() {
  [ ! -h "$rb_d" ] || rb_refuse 126 "$rb_d is a symlink; a bundle unpacks only into a directory of its own" "remove it, or $(rb_fix)"
  [ -e "$rb_d" ] || return 1
  [ -d "$rb_d" ] || rb_refuse 126 "$rb_d exists and is not a directory" "remove it, or $(rb_fix)"
  if [ ! -O "$rb_d" ]; then
    rb_owner "$rb_d"
    rb_refuse 126 "$rb_d belongs to another user (uid $rb_uid): this bundle runs no program from a dir someone else controls" "$(rb_fix)"
  fi
  if [ -f "$rb_d/${MARKER}" ]; then
    read -r rb_m < "$rb_d/${MARKER}" || rb_m=
    if [ "$rb_m" = "$RB_SHA $rb_d" ]; then
      [ ! -x "$rb_d/$RB_ENTRY" ] || return 0
      rb_refuse 126 "$rb_d holds this bundle, but its entry $RB_ENTRY is gone or cannot be run there" \
        "remove it (chmod -R u+w $rb_d && rm -rf $rb_d) to unpack again, or $(rb_fix)"
    fi
    rb_refuse 126 "$rb_d holds another bundle (payload sha256 \${rb_m%% *})" \
      "remove it once nothing runs from it (chmod -R u+w $rb_d && rm -rf $rb_d), or $(rb_fix)"
  fi
  ! rmdir "$rb_d" 2>/dev/null || return 1
  rb_refuse 126 "$rb_d already exists and holds other files" "move them away, or $(rb_fix)"
}

# the start time of pid $1 (the 22nd field of /proc/PID/stat) in rb_started; empty where /proc does not tell
rb_start_of() {
  rb_started=
  read -r rb_st < "/proc/$1/stat" 2>/dev/null || return 0
  set -- \${rb_st##*) }
  [ "$#" -lt 20 ] || { shift 19; rb_started=$1; }
}

# whether pid $1 is a live process (a zombie is not) that started at $2, when given (else the pid was reused)
rb_alive() {
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  if [ -r "/proc/$1/stat" ]; then
    read -r rb_st < "/proc/$1/stat" 2>/dev/null || return 1
    rb_st=\${rb_st##*) }
    case $rb_st in Z* | X*) return 1 ;; esac
    [ -n "\${2-}" ] || return 0
    rb_start_of "$1"
    [ -z "$rb_started" ] || [ "$rb_started" = "$2" ]
    return
  fi
  [ ! -d /proc/self ] || return 1
  kill -0 "$1" 2>/dev/null
}

# the lock: a symlink to PID:START (the pid of the run that unpacks and its start time, which tells
# a reused pid), beside its dir rb_d.uPID
rb_take() {
  rb_tmp=$rb_d.u$$
  rb_rmtree "$rb_tmp"
  mkdir "$rb_tmp" 2>/dev/null || { rb_tmp=; rb_refuse 126 "cannot create a dir beside $rb_d" "make $rb_parent writable, or $(rb_fix)"; }
  rb_start_of $$
  if ln -s "$$\${rb_started:+:$rb_started}" "$rb_lock" 2>/dev/null; then
    rb_locked=1
    # what killed runs left beside the run dir
    for rb_t in "$rb_d".u*; do
      [ ! -d "$rb_t" ] || [ "$rb_t" = "$rb_tmp" ] || rb_alive "\${rb_t##*.u}" || rb_rmtree "$rb_t"
    done
    trap 'rb_cleanup; exit 129' HUP
    trap 'rb_cleanup; exit 130' INT
    trap 'rb_cleanup; exit 143' TERM
    return 0
  fi
  rmdir "$rb_tmp"
  rb_tmp=
  return 1
}

rb_foreign() {
  rb_owner "$1"
  rb_refuse 126 "another user (uid $rb_uid) is unpacking into $rb_d, or left $1 behind" "$(rb_fix)"
}

# waits while a live run of this uid unpacks; clears what a killed one left. The lock's target is
# read as data only: anything but PID[:START] is no lock a run made
rb_wait() {
  rb_h=$(ls -l "$rb_lock" 2>/dev/null) || return 0
  rb_h=\${rb_h##* -> }
  rb_hp=\${rb_h%%:*} rb_hs=
  [ "$rb_hp" = "$rb_h" ] || rb_hs=\${rb_h#*:}
  case $rb_hp:$rb_hs in '':* | *[!0-9:]* | *:*:*) rb_hp= rb_hs= ;; esac
  rb_hd=$rb_d.u$rb_hp
  # another user's unpacking never makes a dir this uid runs: refused now, not waited for
  [ -z "$rb_hp" ] || { [ ! -h "$rb_hd" ] && { [ ! -e "$rb_hd" ] || [ -O "$rb_hd" ]; }; } || rb_foreign "$rb_hd"
  if ! rb_alive "$rb_hp" "$rb_hs" || [ ! -d "$rb_hd" ]; then
    # its run was killed (or its pid now belongs to another process): what it left is redone
    rb_alive "$rb_hp" "$rb_hs" || [ -z "$rb_hp" ] || rb_rmtree "$rb_hd"
    rm -f "$rb_lock" 2>/dev/null
    [ -h "$rb_lock" ] || return 0
    rb_foreign "$rb_lock"
  fi
  if [ -z "$rb_told" ] && [ -t 2 ]; then rb_say "waiting for pid $rb_hp, which is unpacking this bundle into $rb_d"; fi
  rb_told=1
  sleep 0.1 2>/dev/null || sleep 1
}

rb_patch() {
  [ "$rb_d" != "$RB_DIR" ] || return 0
  while IFS= read -r rb_l; do
    IFS= read -r rb_v || return 1
    case $rb_l in
    'b '*)
      chmod u+w "$rb_tmp/\${rb_l#b }" || return 1
      for rb_o in $rb_v; do
        printf '%s' "$rb_d" | dd of="$rb_tmp/\${rb_l#b }" bs=1 seek="$rb_o" count="\${#rb_d}" conv=notrunc 2>/dev/null || return 1
      done ;;
    'l '*) ln -sfn "$rb_d$rb_v" "$rb_tmp/\${rb_l#l }" || return 1 ;;
    esac
  done < "$rb_tmp/${PATCHES}"
}

rb_unpack() {
  [ ! -t 2 ] || rb_say "first run: unpacking $RB_CLOSURE into $rb_d"
  rb_payload gzip -dc | tar -xf - -C "$rb_tmp" ||
    rb_refuse 126 "unpacking into $rb_tmp failed (see above)" "make room in $rb_parent, or $(rb_fix)"
  rb_patch || rb_refuse 126 "writing $rb_d into the unpacked files failed (see above)" "make room in $rb_parent, or run without RELONIX_RUN_DIR"
  { printf '%s %s\n' "$RB_SHA" "$rb_d" > "$rb_tmp/${MARKER}" && chmod -R a-w "$rb_tmp"; } ||
    rb_refuse 126 "cannot finish $rb_tmp" "make room in $rb_parent, or $(rb_fix)"
  # a run that lost a race finds the winner's dir read-only, so its rename fails and its copy goes
  if mv "$rb_tmp" "$rb_d" 2>/dev/null; then rb_tmp=; elif [ ! -e "$rb_d" ]; then
    rb_refuse 126 "cannot rename $rb_tmp to $rb_d" "$(rb_fix)"
  fi
  rb_cleanup
}

rb_main() {
  if [ "\${1-}" = --bundle-info ]; then rb_info; exit 0; fi
  # the loader's debug output is asked of the entry, not of the host's tools that unpack it
  rb_ldd=\${LD_DEBUG-} rb_ldd_set=\${LD_DEBUG+1} rb_ldo=\${LD_DEBUG_OUTPUT-} rb_ldo_set=\${LD_DEBUG_OUTPUT+1}
  unset LD_DEBUG LD_DEBUG_OUTPUT
  case $0 in */*) rb_self=$0 ;; *) rb_self=./$0 ;; esac
  [ -f "$rb_self" ] && [ -r "$rb_self" ] || rb_refuse 126 "cannot read the bundle itself ($0)" 'run it by its path: ./FILE, or sh ./FILE'
  [ -z "\${RELONIX_RUN_DIR-}" ] || rb_check_override
  rb_tools
  rb_parent=\${rb_d%/*}
  [ -n "$rb_parent" ] || rb_parent=/
  [ -d "$rb_parent" ] || mkdir -p "$rb_parent" 2>/dev/null || rb_refuse 126 "cannot create $rb_parent" "$(rb_fix)"
  if ! rb_existing; then
    [ -w "$rb_parent" ] || rb_refuse 126 "$rb_d cannot be made: $rb_parent is not writable" "$(rb_fix)"
    ! rb_noexec "$rb_parent" || rb_refuse 126 "$rb_d would be on a filesystem mounted noexec ($rb_mnt): nothing unpacked there could run" "$(rb_fix)"
    rb_verify
    until rb_existing; do
      if rb_take; then
        rb_existing || rb_unpack
        rb_cleanup
      else
        rb_wait
      fi
    done
  fi
  trap - HUP INT TERM
  [ -z "$rb_ldd_set" ] || export LD_DEBUG="$rb_ldd"
  [ -z "$rb_ldo_set" ] || export LD_DEBUG_OUTPUT="$rb_ldo"
  exec "$rb_d/$RB_ENTRY" "$@"
}

rb_main "$@"
exit 126
`.replaceAll('\\${', '${');

/** The launcher for `v`, padded with newlines to `skip` bytes (the payload's offset); `skip` 0: unpadded. */
export function renderLauncher(v: LauncherValues, skip: number): Buffer {
  const values: Record<string, string> = {
    TITLE: v.name.replace(/[^A-Za-z0-9._+ -]/g, '?'),
    SHA: v.sha256,
    DIR: shQuote(v.runDir),
    ENTRY: shQuote(v.entry),
    SKIP: String(skip),
    BUILT: shQuote(v.storeDir),
    CLOSURE: shQuote(v.closure),
    SYSTEM: shQuote(v.system),
    PAYLOAD: shQuote(v.payload),
    FIXED: shQuote(v.fixed ?? ''),
    VERSION: shQuote(v.version),
    PATHS: shQuote(v.paths.map((p) => `  ${p}`).join('\n')),
  };
  const text = Buffer.from(SCRIPT.replace(/@([A-Z]+)@/g, (_, k: string) => values[k] ?? `@${k}@`));
  if (skip === 0) return text;
  if (text.length > skip) throw new Error(`internal error: the launcher is ${text.length} bytes, more than the ${skip} reserved for it`);
  return Buffer.concat([text, Buffer.alloc(skip - text.length, 0x0a)]);
}

/** The payload's offset for these values: the launcher's length rounded up to ALIGN, with room for any payload's size. */
export function launcherSize(v: LauncherValues): number {
  const longest = renderLauncher({ ...v, sha256: '0'.repeat(64), payload: `${v.payload}${'9'.repeat(24)}` }, 0).length + 16;
  return Math.ceil(longest / ALIGN) * ALIGN;
}
