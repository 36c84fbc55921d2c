# A Nix whose compiled-in store, state and configuration directories are the prefix's, so it
# needs no NIX_* variables: the Nix that the cache-nix stage of `relonix bootstrap` installs.
#
#   nix-build patches/nix-for-prefix.nix --argstr prefix /tmp/nix
#
# In a prefix whose store dir is as long as /nix/store (the default /tmp/nix/s), every dependency
# is nixpkgs' own derivation, so the translator substitutes it from cache.nixos.org: only Nix
# itself is built (minutes, not hours). With a prefix that restarts, push what is built as it
# completes (patches/README.md):
#
#   relonix build --cache URL --secret-key NAME.secret -- patches/nix-for-prefix.nix --argstr prefix /tmp/nix
#
# `restricted ? true` adds restricted-host.nix: tests that fail because of the host rather than the
# package are turned off. That changes those packages' derivations, so they (and everything on
# them) are built here rather than substituted: use it on a host that must build them anyway.
{ prefix ? "/tmp/nix"
  # the store dir relonix gives a new prefix: <prefix>/s when that is as long as /nix/store
, storeDir ? (if builtins.stringLength "${prefix}/s" == 10 then "${prefix}/s" else "${prefix}/store")
, restricted ? false
, pkgs ? import <nixpkgs> { overlays = if restricted then [ (import ./restricted-host.nix) ] else [ ]; }
}:
let
  nix = pkgs.nix.override {
    inherit storeDir;
    stateDir = "${prefix}/var";
    confDir = "${prefix}/etc";
  };
in
nix.overrideAttrs (old: {
  # its functional tests create namespaces and a sandbox, which these hosts do not have
  doInstallCheck = false;
  passthru = (old.passthru or { }) // { relonixPrefix = prefix; };
})
