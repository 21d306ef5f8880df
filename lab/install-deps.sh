#!/usr/bin/env bash
# Install (idempotently) every Debian package the qgactl lab and test suite need.
#
#   bash lab/install-deps.sh          # as root (CI runs as root)
#
# Skips in well under a second when everything is already installed; runs
# `apt-get update` only when a package is missing (and then once).
set -euo pipefail

PACKAGES=(
    # the test guest and the libvirt tier (see shared/LAB.md)
    qemu-system-x86 qemu-guest-agent
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    busybox-static kmod cpio e2fsprogs socat
    # the qemu-ga 10.0 flavour: trixie's .debs checked against Debian's keys, their ELF NEEDED
    # entries read with readelf (lab/fetch-qga10.sh, lab/build-guest.sh)
    debian-archive-keyring binutils
    # the debian12 flavour (lab/build-debian.sh): debootstrap a real Debian 12, qcow2 overlays
    debootstrap qemu-utils
    # the venv's interpreter (Debian's own python3, see the Makefile) and building
    # libvirt-python from PyPI for it
    python3 python3-venv python3-dev libvirt-dev pkg-config gcc
    # tools used by tests / demos
    virtinst libxml2-utils zsh fish tmux bash-completion
    # the .deb tier (tests/install/): checking the package and its man page. `make deb`
    # installs the build dependencies itself (apt-get build-dep, from debian/control).
    lintian man-db
    # UEFI firmware for the virt-install XML corpus (--boot uefi)
    ovmf
    # a libvirt remote URI (qemu+ssh://) for real: the tests start their own sshd on loopback
    openssh-server openssh-client
)

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ "$status" == ii* ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#PACKAGES[@]} packages present" >&2
    exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
# No services started by package scripts (openssh-server would start sshd on port 22): the lab
# starts what it needs itself. policy-rc.d is Debian's switch for that (invoke-rc.d(8)).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
    trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
# Try without an update first only if the package lists exist; otherwise update.
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 \
   || ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "install-deps: done" >&2
