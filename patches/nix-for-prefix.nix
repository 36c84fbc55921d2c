# A Nix whose compiled-in store, state and configuration directories are the prefix's, so it
# needs no NIX_* variables: the Nix that the cache-nix stage of `relonix bootstrap` installs.
#
#   nix-build patches/nix-for-prefix.nix --argstr prefix /tmp/nix
#
# or, on a host that restarts, with every finished derivation pushed to the cache as it completes
# (patches/README.md):
#
#   relonix build --cache URL --secret-key NAME.secret -- patches/nix-for-prefix.nix --argstr prefix /tmp/nix
#
{ prefix ? "/tmp/nix"
, pkgs ? import <nixpkgs> { overlays = [ (import ./restricted-host.nix) ]; }
}:
let
  nix = pkgs.nix.override {
    storeDir = "${prefix}/store";
    stateDir = "${prefix}/var";
    confDir = "${prefix}/etc";
  };
in
nix.overrideAttrs (old: {
  # its functional tests create namespaces and a sandbox, which these hosts do not have
  doInstallCheck = false;
  passthru = (old.passthru or { }) // { relonixPrefix = prefix; };
})
