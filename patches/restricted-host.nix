# nixpkgs overlay for builds on hosts with no namespaces, no ptrace, a seccomp profile that
# answers EPERM for newer syscalls, no passwd entry for the build uid and no controlling pty.
#
#   nix-build '<nixpkgs>' --arg overlays '[ (import ./patches/restricted-host.nix) ]' -A hello
#
# Only test phases are touched: the outputs are the same derivations with checks relaxed where
# the host, not the package, is what fails.
final: prev:
let
  lib = prev.lib;

  # glibc falls back to older syscalls only on ENOSYS; seccomp profiles that answer EPERM for
  # clone3, faccessat2, fchmodat2 and close_range make these suites fail in odd ways.
  seccompEperm = [ "coreutils" "findutils" "diffutils" "gnutar" "libuv" "gnugrep" ];

  # suites that attach with ptrace, pin CPUs, open a pty or look the build uid up in /etc/passwd
  hostBound = [ "strace" "gdb" "util-linux" "python3" "openssh" "bash" "libseccomp" "git" ];

  relax = pkg:
    pkg.overrideAttrs (old: {
      doCheck = false;
      doInstallCheck = false;
      # record why, so `nix derivation show` explains the difference
      passthru = (old.passthru or { }) // { relonixRelaxedChecks = true; };
    });

  pick = names: lib.genAttrs (builtins.filter (n: prev ? ${n}) names) (n: relax prev.${n});
in
pick (seccompEperm ++ hostBound)
