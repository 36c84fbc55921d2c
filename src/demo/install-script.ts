// The two scripts an official release tarball carries, shaped like the originals, for the tarball
// made from Debian's nix-bin: relonix reads `install` for the two store roots.

export function installScript(nixPath: string, cacertPath: string): string {
  // Shaped like the official install-nix-from-closure.sh: the two roots on their own lines.
  return `#!/bin/sh

{ # Prevent execution if this script was only partially downloaded

set -e

dest="/nix"
self="$(dirname "$(realpath "$0")")"
nix="${nixPath}"
cacert="${cacertPath}"

if ! [ -e "$self/.reginfo" ]; then
    echo "$0: incomplete installer (.reginfo is missing)" >&2
    exit 1
fi

if [ -z "$USER" ] && ! USER=$(id -u -n); then
    echo "$0: Cannot figure out the user name." >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "$0: please do not run this installer as root" >&2
    exit 1
fi

if ! [ -e "$dest" ]; then
    echo "$0: $dest does not exist; create it (sudo mkdir -m 0755 $dest && sudo chown $USER $dest)" >&2
    exit 1
fi

mkdir -p "$dest/store"

printf "copying Nix to %s..." "$dest/store" >&2
for i in $(cd "$self/store" >/dev/null && echo ./*); do
    printf "." >&2
    i_tmp="$dest/store/$i.$$"
    if [ -e "$i_tmp" ]; then
        rm -rf "$i_tmp"
    fi
    if ! [ -e "$dest/store/$i" ]; then
        cp -RPp "$self/store/$i" "$i_tmp"
        chmod -R a-w "$i_tmp"
        chmod +w "$i_tmp"
        mv "$i_tmp" "$dest/store/$i"
        chmod -w "$dest/store/$i"
    fi
done
echo "" >&2

if ! "$nix/bin/nix-store" --load-db < "$self/.reginfo"; then
    echo "$0: unable to register valid paths" >&2
    exit 1
fi

. "$nix/etc/profile.d/nix.sh"

if ! "$nix/bin/nix-env" -i "$nix"; then
    echo "$0: unable to install Nix into your default profile" >&2
    exit 1
fi

if [ -z "$NIX_SSL_CERT_FILE" ] || ! [ -f "$NIX_SSL_CERT_FILE" ]; then
    "$nix/bin/nix-env" -i "$cacert"
    export NIX_SSL_CERT_FILE="$HOME/.nix-profile/etc/ssl/certs/ca-bundle.crt"
fi

echo "Installation finished!" >&2

} # End of wrapping
`;
}

export function profileScript(nixPath: string, cacertPath: string): string {
  return `# Nix environment for login shells (${nixPath})
if [ -n "\${HOME-}" ] && [ -n "\${USER-}" ]; then
    NIX_LINK="$HOME/.nix-profile"
    if [ -z "\${NIX_SSL_CERT_FILE-}" ]; then
        if [ -e /etc/ssl/certs/ca-certificates.crt ]; then
            export NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
        elif [ -e "$NIX_LINK/etc/ssl/certs/ca-bundle.crt" ]; then
            export NIX_SSL_CERT_FILE="$NIX_LINK/etc/ssl/certs/ca-bundle.crt"
        else
            export NIX_SSL_CERT_FILE="${cacertPath}/etc/ssl/certs/ca-bundle.crt"
        fi
    fi
    export PATH="$NIX_LINK/bin:${nixPath}/bin:$PATH"
    unset NIX_LINK
fi
`;
}
