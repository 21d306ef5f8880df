#!/usr/bin/env bash
# Build the qgactl lab guest, both flavours (idempotent; ~0.05 s when already built).
#
#   bash lab/build-guest.sh [--force]
#
# Outputs in lab/build/ (override with QGACTL_LAB_BUILD=DIR):
#   vmlinux           Debian's kernel, taken from the .deb without installing it, uncompressed:
#                     QEMU boots the ELF through its PVH entry point, skipping the bzImage's
#                     own decompression, ~7 s of every TCG boot (8.5 s -> 1.6 s to the first
#                     kernel line, measured 2026-12-01)
#   vmlinuz           the same kernel compressed (bzImage), booted through the BIOS: a PVH-booted
#                     guest does not resume from S3 (lab.start_domain(bzimage=True))
#   initrd.img        flavour "host": direct-kernel-boot initramfs (uncompressed newc cpio) with
#                     busybox-static, the host's /usr/sbin/qemu-ga (7.2 on Debian 12) + its
#                     libraries, virtio/ext4 modules, /init
#   initrd-qga10.img  flavour "qga10": the same guest with Debian 13's qemu-ga 10.0 and trixie's
#                     libc/glib/... (its own /lib64/ld-linux-x86-64.so.2) instead of the host's
#   data.img          16 MiB ext4 image; give each guest its own copy (lab.py: fresh_data_disk)
#   kernel.version    the kernel version string (e.g. 6.1.0-56-amd64)
#   qga10/            trixie .debs and the side apt state that fetched them (fetch-qga10.sh);
#                     kept across rebuilds, fetched again only when deleted
#   build.stamp       hash of this script, fetch-qga10.sh, the host's qemu-ga and busybox;
#                     outputs are rebuilt when it changes
#
# Guest behaviour (see the /init written below), the same in both flavours:
#   - console on ttyS0 (kernel cmdline: console=ttyS0)
#   - one qemu-ga per virtio port named org.qemu.guest_agent.*, restarted when it exits; ports
#     hot-plugged later are picked up on the kernel's uevent; kernel cmdline `qgactl.noagent` =
#     no agent, `qgactl.block=LIST` = qemu-ga --block-rpcs LIST
#   - /dev/vda (ext4) mounted at /mnt/data
#   - eth0 10.0.2.15/24 (default route via 10.0.2.2) and its fe80:: link-local address (no
#     DAD, no router solicitations, no SLAAC: the addresses are known before qemu-ga starts)
#   - user qgauser (uid/gid 1000, home /home/qgauser with ~/.ssh 0700) logged in on ttyS0
#     (busybox login -f: a USER_PROCESS record in /run/utmp), with an /etc/shadow entry
#   - /usr/sbin/chpasswd (busybox has none): what guest-set-user-password runs
#   - time zone TZ=IST-5:30 (/etc/TZ, qemu-ga's environment); the RTC is UTC (/etc/adjtime)
#   - /sbin/shutdown (-P poweroff, -H halt, -r reboot), poweroff, reboot, halt really act
#     (busybox ... -f; poweroff needs ACPI)
#   - /sbin/hwclock sleeps N seconds first if /run/qgactl-slow-hwclock holds N (slow set-time)
#   - /etc/os-release VARIANT_ID is the flavour (host, qga10)
#
# Needs: apt-get (download only), dpkg, kmod (depmod/modprobe), cpio, e2fsprogs, binutils
# (readelf), busybox-static, qemu-guest-agent: all installed by lab/install-deps.sh.  Kernel
# package override: QGACTL_LAB_KERNEL_PKG=linux-image-X-amd64.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${QGACTL_LAB_BUILD:-$HERE/build}
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: ERROR: $*" >&2; exit 1; }

for tool in dpkg depmod modprobe cpio mkfs.ext4 apt-get readelf; do
    command -v "$tool" >/dev/null || die "$tool not found (run lab/install-deps.sh)"
done
QGA=/usr/sbin/qemu-ga
BUSYBOX=/bin/busybox
[[ -x $QGA ]] || die "$QGA not found (package qemu-guest-agent; run lab/install-deps.sh)"
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found (package busybox-static; run lab/install-deps.sh)"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is not static (install busybox-static)"

# flavour -> its initramfs (lab.py's FLAVOURS says the same)
declare -A INITRD=([host]=initrd.img [qga10]=initrd-qga10.img)

STAMP=$( { sha256sum "${BASH_SOURCE[0]}" "$HERE/fetch-qga10.sh" "$QGA" "$BUSYBOX" \
               | cut -d' ' -f1;
           echo "${QGACTL_LAB_KERNEL_PKG:-}"; } | sha256sum | cut -c1-16)
if ((FORCE == 0)) && [[ -f $BUILD/build.stamp && "$(cat "$BUILD/build.stamp")" == "$STAMP" ]] \
   && [[ -s $BUILD/vmlinux && -s $BUILD/vmlinuz && -s $BUILD/${INITRD[host]} \
         && -s $BUILD/${INITRD[qga10]} && -s $BUILD/data.img ]]; then
    log "up to date ($BUILD)"
    exit 0
fi

mkdir -p "$BUILD/cache"
rm -f "$BUILD/build.stamp"

# ---------------------------------------------------------------- kernel package
kernel_pkg() {
    if [[ -n "${QGACTL_LAB_KERNEL_PKG:-}" ]]; then echo "$QGACTL_LAB_KERNEL_PKG"; return; fi
    apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1
}
PKG=$(kernel_pkg)
if [[ -z "$PKG" ]]; then
    # Reuse an already downloaded kernel when the package lists are unavailable.
    deb=$(ls -t "$BUILD"/cache/linux-image-*.deb 2>/dev/null | head -n1 || true)
    if [[ -n "$deb" ]]; then
        PKG=$(dpkg-deb -f "$deb" Package)
    else
        log "no package lists: apt-get update"
        if [[ $(id -u) -eq 0 ]]; then apt-get update -qq; else sudo apt-get update -qq; fi
        PKG=$(kernel_pkg)
    fi
fi
[[ -n "$PKG" ]] || die "cannot find the kernel package (apt-cache depends linux-image-amd64)"
KVER=${PKG#linux-image-}
DEB=$(ls "$BUILD"/cache/"${PKG}"_*.deb 2>/dev/null | head -n1 || true)
if [[ -z "$DEB" ]]; then
    log "downloading $PKG"
    rm -f "$BUILD"/cache/linux-image-*.deb
    (cd "$BUILD/cache" && apt-get download -q -o APT::Sandbox::User=root "$PKG" >&2) \
        || die "apt-get download $PKG failed"
    DEB=$(ls "$BUILD"/cache/"${PKG}"_*.deb | head -n1)
fi
log "kernel $KVER from $(basename "$DEB")"

WORK=$(mktemp -d "$BUILD/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
KX=$WORK/kernel
mkdir -p "$KX"
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$KX" ./boot ./lib/modules 2>/dev/null \
    || dpkg -x "$DEB" "$KX"
[[ -f $KX/boot/vmlinuz-$KVER ]] || die "vmlinuz-$KVER not in $DEB"
depmod -b "$KX" "$KVER"

# Modules + dependencies (softdeps included), in load order, without duplicates.
MODS="virtio_pci virtio_console virtio_blk virtio_net ext4 crc32c_generic"
mapfile -t MODFILES < <(
    for m in $MODS; do modprobe -d "$KX" -S "$KVER" --show-depends "$m"; done \
        | awk '$1 == "insmod" && !seen[$2]++ {print $2}'
)
((${#MODFILES[@]} > 0)) || die "no modules found"

# ---------------------------------------------------------------- initramfs tree (no agent yet)
R=$WORK/base
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/qgactl-lab,proc,sys,dev,run,tmp,root,mnt/data,var/log} \
         "$R/lib/modules" "$R/home/qgauser/.ssh"
chmod 700 "$R/home/qgauser/.ssh"  # /init chowns the home to qgauser (cpio packs as root)
chmod 1777 "$R/tmp"
ln -s ../run "$R/var/run"

cp "$BUSYBOX" "$R/bin/busybox"
# busybox --install wants /proc/self/exe; make the links from the host's applet list instead.
"$BUSYBOX" --list-full | while read -r applet; do
    [[ -e "$R/$applet" || -L "$R/$applet" ]] || ln -s /bin/busybox "$R/$applet"
done

# Modules (decompressed), flat, with the load order in etc/qgactl-lab/modules.
: > "$R/etc/qgactl-lab/modules"
for f in "${MODFILES[@]}"; do
    base=$(basename "$f")
    case "$f" in
        *.ko.xz)  xz -dc "$f" > "$R/lib/modules/${base%.xz}"; base=${base%.xz} ;;
        *.ko.zst) zstd -qdc "$f" > "$R/lib/modules/${base%.zst}"; base=${base%.zst} ;;
        *.ko.gz)  gzip -dc "$f" > "$R/lib/modules/${base%.gz}"; base=${base%.gz} ;;
        *)        cp "$f" "$R/lib/modules/$base" ;;
    esac
    echo "$base" >> "$R/etc/qgactl-lab/modules"
done

# ---------------------------------------------------------------- /etc
echo qgactl-lab > "$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 qgactl-lab\n' > "$R/etc/hosts"
cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
qgauser:x:1000:1000:qgactl lab user:/home/qgauser:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
printf 'root:x:0:\nqgauser:x:1000:\nnogroup:x:65534:\n' > "$R/etc/group"
# qgauser starts locked ("!"): guest-set-user-password gives it a hash (tests compare the two).
printf '%s:%s:19000:0:99999:7:::\n' root '*' qgauser '!' nobody '*' > "$R/etc/shadow"
chmod 600 "$R/etc/shadow"
echo /bin/sh > "$R/etc/shells"
# A POSIX TZ (glibc and glib read it from the environment; /init exports it): a zone with a
# half-hour offset, as measured in PROTOCOL.md ({"zone": "IST", "offset": 19800}).
echo IST-5:30 > "$R/etc/TZ"
# The RTC keeps UTC: without this busybox `hwclock -s` (guest-set-time) reads it as local time.
printf '0.0 0 0.0\n0\nUTC\n' > "$R/etc/adjtime"
echo "$KVER" > "$R/etc/qgactl-lab/kernel.version"

# ---------------------------------------------------------------- power + hwclock wrappers
for a in poweroff reboot halt; do
    rm -f "$R/sbin/$a"
    cat > "$R/sbin/$a" <<EOF
#!/bin/sh
# really $a the lab guest (PID 1 is a shell, it would not handle busybox's signal)
echo "qgactl-lab: $a" > /dev/console 2>/dev/null
sync
exec /bin/busybox $a -f
EOF
    chmod 755 "$R/sbin/$a"
done

rm -f "$R/sbin/shutdown"
cat > "$R/sbin/shutdown" <<'EOF'
#!/bin/sh
# qemu-ga runs: shutdown -h -P|-H|-r +0 "hypervisor initiated shutdown"
action=poweroff
for a in "$@"; do
    case "$a" in -r) action=reboot ;; -H) action=halt ;; -P) action=poweroff ;; esac
done
echo "qgactl-lab: shutdown $* -> $action" > /dev/console 2>/dev/null
# Let the caller (qemu-ga) see a clean exit, then act.
( sleep 0.3; sync; exec /bin/busybox "$action" -f ) </dev/null >/dev/null 2>&1 &
exit 0
EOF
chmod 755 "$R/sbin/shutdown"

rm -f "$R/sbin/hwclock"
cat > "$R/sbin/hwclock" <<'EOF'
#!/bin/sh
# Tests make guest-set-time slow on purpose: write N (seconds) to /run/qgactl-slow-hwclock.
if [ -r /run/qgactl-slow-hwclock ]; then
    read -r n < /run/qgactl-slow-hwclock
    case "$n" in ''|*[!0-9.]*) ;; *) sleep "$n" ;; esac
fi
exec /bin/busybox hwclock "$@"
EOF
chmod 755 "$R/sbin/hwclock"

# ---------------------------------------------------------------- /usr/sbin/chpasswd
rm -f "$R/usr/sbin/chpasswd"
cat > "$R/usr/sbin/chpasswd" <<'EOF'
#!/bin/sh
# chpasswd for the lab guest (busybox-static has no such applet). guest-set-user-password runs
# `chpasswd` (`chpasswd -e` when crypted) with "USER:PASSWORD\n" on stdin (qga/commands-posix.c).
# Sets USER's hash in /etc/shadow (sha512 from busybox mkpasswd, or the given hash with -e) and
# the day of the change; every other line is kept as it was. The password is never in argv.
crypted=0
case "${1:-}" in
    -e|--encrypted) crypted=1 ;;
    '') ;;
    *) echo "chpasswd: unknown option $1" >&2; exit 2 ;;
esac
umask 077
status=0
while IFS= read -r line || [ -n "$line" ]; do
    user=${line%%:*}
    pass=${line#*:}
    if [ -z "$user" ] || [ "$user" = "$line" ]; then
        echo "chpasswd: line is not USER:PASSWORD" >&2; status=1; continue
    fi
    if [ $crypted = 1 ]; then
        hash=$pass
    else
        hash=$(printf '%s\n' "$pass" | mkpasswd -m sha512) || { status=1; continue; }
    fi
    case "$hash" in
        ''|*:*) echo "chpasswd: unusable hash for $user" >&2; status=1; continue ;;
    esac
    if U=$user H=$hash D=$(($(date +%s) / 86400)) awk -F: -v OFS=: '
            $1 == ENVIRON["U"] { $2 = ENVIRON["H"]; $3 = ENVIRON["D"]; found = 1 }
            { print }
            END { exit !found }' /etc/shadow > /etc/shadow.new; then
        mv -f /etc/shadow.new /etc/shadow
    else
        rm -f /etc/shadow.new
        echo "chpasswd: no user $user in /etc/shadow" >&2; status=1
    fi
done
exit $status
EOF
chmod 755 "$R/usr/sbin/chpasswd"

# ---------------------------------------------------------------- /sbin/qgactl-ports
# Run by /init once and by `uevent` for every kernel uevent: keep the /dev/virtio-ports links
# udev would make, and a supervised qemu-ga on each port named org.qemu.guest_agent.*.
cat > "$R/sbin/qgactl-ports" <<'EOF'
#!/bin/sh
case "$SUBSYSTEM" in ''|virtio-ports) ;; *) exit 0 ;; esac
log() { echo "qgactl-lab: $*" > /dev/console; }
NOAGENT=0
BLOCK=
for word in $(cat /proc/cmdline); do
    case "$word" in
        qgactl.noagent) NOAGENT=1 ;;
        qgactl.block=*) BLOCK="-b ${word#qgactl.block=}" ;;  # qemu-ga --block-rpcs LIST
    esac
done

supervise() {  # $1: port name; runs qemu-ga while the port exists
    name=$1
    mkdir -p "/run/qga/$name"
    while [ -e "/dev/virtio-ports/$name" ]; do
        log "starting qemu-ga on $name"
        # shellcheck disable=SC2086  # $BLOCK is "" or two words
        qemu-ga -m virtio-serial -p "/dev/virtio-ports/$name" -t "/run/qga/$name" $BLOCK \
            -l "/var/log/qemu-ga.$name.log" </dev/null >/dev/null 2>&1
        log "qemu-ga on $name exited ($?)"
        sleep 0.5
    done
    rm -f "/run/qga-sup/$name.pid"
}

# init's scan and uevent's may overlap at boot: one at a time (mkdir is atomic).
until mkdir /run/qga-sup/scanning 2>/dev/null; do sleep 0.05; done
for link in /dev/virtio-ports/*; do
    [ -L "$link" ] && [ ! -e "$link" ] && rm -f "$link"
done
for d in /sys/class/virtio-ports/vport*; do
    [ -r "$d/name" ] || continue
    read -r name < "$d/name" || continue
    [ -n "$name" ] || continue
    dev=${d##*/}
    [ -c "/dev/$dev" ] || continue
    if ! [ "/dev/virtio-ports/$name" -ef "/dev/$dev" ]; then
        ln -sfn "../$dev" "/dev/virtio-ports/$name"
    fi
    case "$name" in org.qemu.guest_agent.*) ;; *) continue ;; esac
    [ $NOAGENT = 1 ] && continue
    pidf=/run/qga-sup/$name.pid
    if [ -f "$pidf" ]; then
        read -r pid < "$pidf"
        kill -0 "$pid" 2>/dev/null && continue
    fi
    supervise "$name" &
    echo $! > "$pidf"
done
rmdir /run/qga-sup/scanning
EOF
chmod 755 "$R/sbin/qgactl-ports"

# ---------------------------------------------------------------- /init
cat > "$R/init" <<'EOF'
#!/bin/sh
# qgactl lab guest init (PID 1).
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
read -r TZ < /etc/TZ && export TZ  # everything started below, qemu-ga included, has it
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /dev/virtio-ports
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /dev/shm
exec </dev/console >/dev/console 2>&1
log() { echo "qgactl-lab: $*"; }
trap 'sync; /bin/busybox poweroff -f' USR2 TERM
trap 'sync; /bin/busybox reboot -f' INT
trap 'sync; /bin/busybox halt -f' USR1

hostname -F /etc/hostname
ip link set lo up 2>/dev/null
mkdir -p /run/qga /run/qga-sup

while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null || log "insmod $m failed (ignored)"
done < /etc/qgactl-lab/modules

i=0
while [ ! -b /dev/vda ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b /dev/vda ]; then
    mount -t ext4 /dev/vda /mnt/data && log "mounted /dev/vda on /mnt/data" \
        || log "mount /dev/vda failed"
else
    log "no data disk (/dev/vda)"
fi

# eth0 with a fixed address, no DHCP: nothing to ask (plain QEMU: restricted slirp; libvirt: a
# UDP socket to 127.0.0.1). No DAD, router solicitations or SLAAC, so the link-local address is
# final at once and the only IPv6 one; wait for it before qemu-ga starts (early answers miss it).
if [ -d /sys/class/net/eth0 ]; then
    for knob in accept_dad accept_ra router_solicitations; do
        echo 0 > "/proc/sys/net/ipv6/conf/eth0/$knob"
    done
    ip addr add 10.0.2.15/24 dev eth0
    ip link set eth0 up
    ip route add default via 10.0.2.2 dev eth0
    i=0
    until ip -6 addr show dev eth0 scope link | grep -q 'inet6 fe80:' || [ $i -ge 50 ]; do
        sleep 0.1; i=$((i + 1))
    done
    log "eth0: $(ip -o addr show dev eth0 | awk '{printf "%s ", $4}')"
else
    log "no eth0"
fi

# A logged-in user: busybox login -f writes a USER_PROCESS utmp record (what guest-get-users
# reads); its shell then waits on the serial line, which has no input.
chown -R qgauser:qgauser /home/qgauser
setsid -c login -f qgauser </dev/ttyS0 >/dev/ttyS0 2>&1 &
i=0
until grep -q qgauser /run/utmp 2>/dev/null || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done

case " $(cat /proc/cmdline) " in *" qgactl.noagent "*) log "qgactl.noagent: not starting qemu-ga" ;; esac

# Watch the virtio ports with the kernel's uevents (a port added, named or removed): no
# polling, which cost every idle TCG guest ~2% of a host core (4.0% -> 1.7% without it). The
# ports that exist now get one scan by hand; uevent starts listening first, so none is missed.
uevent /sbin/qgactl-ports &
/sbin/qgactl-ports
: > /run/qgactl-lab.ready
log "ready"

# PID 1's last job: reap orphans. `wait` returns at once for a trapped signal; `sleep` would
# hold the traps above until it ended.
while :; do
    sleep 3600 &
    wait $!
done
EOF
chmod 755 "$R/init"

# ---------------------------------------------------------------- the flavours' agents
# flavour "host": the host's qemu-ga and the libraries ldd lists (kept at their own paths).
add_host_agent() {  # $1: tree
    cp "$QGA" "$1/usr/sbin/qemu-ga"
    ldd "$QGA" | awk '$2 == "=>" {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
        [[ -n "$lib" && -e "$lib" ]] || continue
        mkdir -p "$1$(dirname "$lib")"
        cp -L "$lib" "$1$lib"
    done
}

# flavour "qga10": trixie's qemu-ga and, from the trixie .debs, the libraries its ELF NEEDED
# entries name (recursively), in /usr/lib/x86_64-linux-gnu where trixie's loader looks, and
# /lib64/ld-linux-x86-64.so.2 (qemu-ga's PT_INTERP) a link to that loader, as in trixie.
# trixie's ldd is not run: that would execute trixie's libc on the host.
add_qga10_agent() {  # $1: tree
    local src=$WORK/trixie lib=usr/lib/x86_64-linux-gnu deb name
    bash "$HERE/fetch-qga10.sh" "$BUILD/qga10"
    deb=$(ls "$BUILD"/qga10/debs/qemu-guest-agent_*.deb)
    [[ $(dpkg-deb -f "$deb" Version) == 1:10.0.* ]] || die "qga10: $deb is not qemu-ga 10.0"
    mkdir -p "$src"
    for deb in "$BUILD"/qga10/debs/*.deb; do dpkg -x "$deb" "$src"; done
    install -D -m 755 "$src/usr/sbin/qemu-ga" "$1/usr/sbin/qemu-ga"
    install -D -m 755 "$src/$lib/ld-linux-x86-64.so.2" "$1/$lib/ld-linux-x86-64.so.2"
    mkdir -p "$1/lib64"
    ln -s "../$lib/ld-linux-x86-64.so.2" "$1/lib64/ld-linux-x86-64.so.2"
    local -a todo=("$1/usr/sbin/qemu-ga")
    while ((${#todo[@]} > 0)); do
        local elf=${todo[0]}
        todo=("${todo[@]:1}")
        for name in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [[ -e $1/$lib/$name ]] && continue
            [[ -e $src/$lib/$name ]] || die "qga10: no $name (for ${elf##*/}) in the trixie debs"
            cp -L "$src/$lib/$name" "$1/$lib/$name"
            todo+=("$1/$lib/$name")
        done
    done
}

write_os_release() {  # $1: tree, $2: flavour
    cat > "$1/etc/os-release" <<EOF
NAME="qgactl lab"
ID=qgactllab
VERSION_ID=1
VERSION="1 (test guest)"
PRETTY_NAME="qgactl lab 1"
VARIANT="$2 agent"
VARIANT_ID=$2
HOME_URL="https://example.invalid/qgactl"
EOF
    echo "$2" > "$1/etc/qgactl-lab/flavour"
}

# ---------------------------------------------------------------- pack
for flavour in "${!INITRD[@]}"; do
    T=$WORK/$flavour
    cp -a "$R" "$T"
    "add_${flavour}_agent" "$T"
    write_os_release "$T" "$flavour"
    (cd "$T" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
        > "$WORK/${INITRD[$flavour]}"
done

# bzImage -> vmlinux: the payload's place is in the setup header (Documentation/x86/boot.rst:
# setup_sects at 0x1f1, payload_offset at 0x248 and payload_length at 0x24c, both counted from
# the protected-mode code after the setup sectors). Debian compresses it with xz.
BZ=$KX/boot/vmlinuz-$KVER
header() { od -An -tu"$2" -j $(($1)) -N "$2" "$BZ" | tr -d ' '; }
payload_start=$(( ($(header 0x1f1 1) + 1) * 512 + $(header 0x248 4) ))
dd if="$BZ" of="$WORK/payload" bs=64K iflag=skip_bytes,count_bytes status=none \
    skip="$payload_start" count="$(header 0x24c 4)"
[[ $(od -An -tx1 -N6 "$WORK/payload" | tr -d ' ') == fd377a585a00 ]] \
    || die "the kernel payload in $BZ is not xz"
xz -dc --single-stream "$WORK/payload" > "$WORK/vmlinux"  # ignores the appended size
readelf -n "$WORK/vmlinux" | grep -q '(0x00000012)' \
    || die "$BZ has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY): QEMU can't boot it as ELF"

mkdir -p "$WORK/datafs"
echo "qgactl lab data disk" > "$WORK/datafs/README"
truncate -s 16M "$WORK/data.img"
mkfs.ext4 -F -q -L qgactl-data -d "$WORK/datafs" "$WORK/data.img"

cp "$BZ" "$WORK/vmlinuz"
for f in vmlinux vmlinuz "${INITRD[@]}" data.img; do mv -f "$WORK/$f" "$BUILD/$f"; done
echo "$KVER" > "$BUILD/kernel.version"
echo "$STAMP" > "$BUILD/build.stamp"
log "built $BUILD: kernel $KVER, $(cd "$BUILD" && du -k "${INITRD[@]}" | awk '{printf "%s %s KiB ", $2, $1}')"
