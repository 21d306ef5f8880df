#!/usr/bin/env bash
# Build (idempotently) the "debian12" lab guest: a real Debian 12 system with systemd as PID 1,
# Debian's own qemu-guest-agent package and unit, bash, util-linux (script), python3, vim-tiny,
# less, procps, and a user with a home. What `qgactl shell` and the Ansible tests need, and what
# the busybox guests (build-guest.sh) don't have.
#
#   bash lab/build-debian.sh [--force]      # as root; prints the cache folder on stdout
#
# Cached OUTSIDE any worktree so every worktree and CI run reuses one build:
#   ${QGACTL_DEBIAN_CACHE:-/var/lib/qgactl-lab/debian12}/<hash of this script>/
#       base.img      1.5 GiB sparse raw ext4 image of the root file system (no partition table;
#                     made with mkfs.ext4 -d, no loop mount). Never boot it directly: boot a qcow2
#                     overlay with it as backing file (lab.py does), so it stays pristine.
#       vmlinuz       the guest's own kernel and initramfs (virtio modules forced in), booted by
#       initrd.img    direct kernel boot: root=/dev/vda rw console=ttyS0
#       kernel.version
# A change to this script is a new hash, hence a new build; old builds are left for a human to
# delete. Concurrent builds of the same hash wait on a lock; a half-built tree is never used (the
# folder is renamed into place when complete).
#
# Guest: hostname debian12; root locked; user qgauser (uid 1000, /home/qgauser, bash, no
# password, logged in on ttyS0 by a getty autologin: guest-get-users sees a session and `virsh
# console` gets a shell); systemd-networkd DHCP on en*/eth*; apt timers and other periodic jobs
# masked (they compete for TCG's CPU).
# Measured 2026-12-07 on this machine kind: see LAB.md / the commit message.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export LC_ALL=C.UTF-8

log() { echo "build-debian: $*" >&2; }
die() { echo "build-debian: ERROR: $*" >&2; exit 1; }

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap mkfs.ext4 unshare flock sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (run lab/install-deps.sh)"
done

MIRROR=${QGACTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
IMAGE_SIZE=1536M
USER_NAME=qgauser
PACKAGES=systemd-sysv,udev,dbus,libpam-systemd,qemu-guest-agent,linux-image-amd64,initramfs-tools
PACKAGES+=,util-linux,util-linux-extra,procps,iproute2,python3,bash,vim-tiny,less,kmod
# Ansible's apt module needs python3-apt (tests/vm/test_ansible.py)
PACKAGES+=,python3-apt

ROOT=${QGACTL_DEBIAN_CACHE:-/var/lib/qgactl-lab/debian12}
KEY=$( { sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1; echo "$MIRROR"; } | sha256sum | cut -c1-16)
OUT=$ROOT/$KEY

complete() { [[ -s $OUT/base.img && -s $OUT/vmlinuz && -s $OUT/initrd.img ]]; }

mkdir -p "$ROOT"
chmod 755 "$ROOT" "$(dirname "$ROOT")"
exec 9>"$ROOT/.lock"
flock 9
if ((FORCE == 0)) && complete; then
    log "up to date ($OUT)"
    echo "$OUT"
    exit 0
fi

START=$SECONDS
WORK=$(mktemp -d "$ROOT/.build-XXXXXX")
# debootstrap mounts /proc and /sys in the tree while it runs: unmount before removing, and never
# cross into another file system.
cleanup() {
    grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
TREE=$WORK/rootfs
mkdir -p "$TREE"
chmod 755 "$TREE"   # mktemp's 0700 would become the guest's / (login fails)

log "debootstrap $SUITE from $MIRROR into $TREE"
mkdir -p "$ROOT/debs"   # the downloaded .debs, kept: a rebuild then needs no download
debootstrap --variant=minbase --cache-dir="$ROOT/debs" --include="$PACKAGES" "$SUITE" "$TREE" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
log "debootstrap done after $((SECONDS - START)) s"

# -- configuration ---------------------------------------------------------------------------
echo debian12 >"$TREE/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian12\n' >"$TREE/etc/hosts"
printf '/dev/vda\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' >"$TREE/etc/fstab"
: >"$TREE/etc/machine-id"   # systemd makes one on first boot (each overlay its own)

chroot "$TREE" useradd -m -u 1000 -s /bin/bash "$USER_NAME"
chroot "$TREE" passwd -d "$USER_NAME" >/dev/null
chroot "$TREE" passwd -l root >/dev/null

mkdir -p "$TREE/etc/systemd/network"
cat >"$TREE/etc/systemd/network/10-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
# The lab's NIC (lab.py) is a UDP socket to loopback with no DHCP server behind it: give the
# lab MAC the address user-mode networking would (build-guest.sh's guests have it too), so the
# agent reports a real IPv4 address either way.
cat >"$TREE/etc/systemd/network/05-lab.network" <<'EOF'
[Match]
MACAddress=52:54:00:12:34:56

[Network]
DHCP=yes
Address=10.0.2.15/24
Gateway=10.0.2.2
EOF

mkdir -p "$TREE/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$TREE/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<EOF
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin $USER_NAME --keep-baud 115200,57600,38400,9600 %I \$TERM
EOF

chroot "$TREE" systemctl enable systemd-networkd.service serial-getty@ttyS0.service >/dev/null 2>&1
# Periodic jobs and waits that only cost CPU under TCG.
chroot "$TREE" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer systemd-networkd-wait-online.service >/dev/null 2>&1

# -- initramfs with the virtio modules forced in --------------------------------------------
KVER=$(basename "$(ls -d "$TREE"/lib/modules/*)")
printf '%s\n' virtio_pci virtio_blk virtio_console virtio_net ext4 >>"$TREE/etc/initramfs-tools/modules"
# A private mount namespace: the binds vanish with it, whatever happens.
unshare -m -- sh -ec '
    for d in proc sys dev; do mount --rbind /$d "$1/$d"; done
    chroot "$1" update-initramfs -u -k "$2" >/dev/null
' sh "$TREE" "$KVER"
INITRD=$TREE/boot/initrd.img-$KVER
listing=$(chroot "$TREE" lsinitramfs "/boot/initrd.img-$KVER")   # the guest's own tool
for m in virtio_blk virtio_pci virtio_console ext4; do
    grep -q "/$m.ko" <<<"$listing" || die "initramfs lacks $m"
done

mkdir -p "$WORK/out"
cp "$TREE/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"
cp "$INITRD" "$WORK/out/initrd.img"
echo "$KVER" >"$WORK/out/kernel.version"

# -- image ------------------------------------------------------------------------------------
rm -rf "$TREE"/var/cache/apt/archives/*.deb "$TREE"/var/lib/apt/lists/*_Packages \
       "$TREE"/var/log/*.log
truncate -s "$IMAGE_SIZE" "$WORK/out/base.img"
mkfs.ext4 -q -F -L debian12 -d "$TREE" "$WORK/out/base.img"
chmod 644 "$WORK/out"/*
chmod 755 "$WORK/out"

rm -rf "$OUT"
mv "$WORK/out" "$OUT"
log "built $OUT in $((SECONDS - START)) s ($(du -sh --apparent-size "$OUT/base.img" | cut -f1) apparent, $(du -sh "$OUT/base.img" | cut -f1) used)"
echo "$OUT"
