#!/bin/sh
# The Debian packages the demo needs: the Nix its tarball is made from and the tools that make it.
# Installs what is missing, through sudo when not root; does nothing when everything is there.
set -eu
need=""
for p in nix-bin patchelf xz-utils ca-certificates; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  as_root=""
elif command -v sudo >/dev/null 2>&1; then
  as_root="sudo"
else
  echo "host-deps: installing$need needs root: run this as root, or as a user with sudo" >&2
  exit 1
fi
# a fresh container has no package lists yet
$as_root apt-get update -qq
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
