#!/usr/bin/env bash
# Fetch Debian 13 (trixie)'s qemu-guest-agent 10.0 and every library it needs, as .debs, for
# the lab guest's second flavour. Nothing is installed on the host: apt runs against a sources
# list and state dirs of our own, and only downloads (../shared/LAB.md, "A second agent version").
#
#   bash lab/fetch-qga10.sh DIR
#
# DIR/apt/    side sources.list, package lists, cache, an empty dpkg status (so the host's
#             installed packages do not change what apt resolves)
# DIR/debs/   qemu-guest-agent_*.deb and its Depends/Pre-Depends closure (apt-cache depends
#             --recurse: libc6, libglib2.0-0t64, libnuma1, libudev1, liburing2, pcre2, ffi...)
# DIR/debs/.complete   written last: its presence means debs/ is whole; then this script only
#             checks it (~0 s, no network). Delete DIR to fetch again.
set -euo pipefail

DIR=${1:?usage: fetch-qga10.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)  # apt reads relative Dir:: paths against Dir::State
SUITE=trixie
AGENT_PKG=qemu-guest-agent
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APT_DIR=$DIR/apt
DEBS=$DIR/debs

log() { echo "fetch-qga10: $*" >&2; }
die() { echo "fetch-qga10: ERROR: $*" >&2; exit 1; }

if [[ -f $DEBS/.complete ]] && ls "$DEBS"/${AGENT_PKG}_*.deb >/dev/null 2>&1; then
    exit 0
fi
[[ -r $KEYRING ]] || die "$KEYRING missing (package debian-archive-keyring)"

mkdir -p "$APT_DIR"/lists/partial "$APT_DIR"/cache/archives/partial "$DEBS"
printf 'deb [signed-by=%s] http://deb.debian.org/debian %s main\n' "$KEYRING" "$SUITE" \
    > "$APT_DIR/sources.list"
: > "$APT_DIR/status"
APT_OPTS=(
    -o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o "Dir::State=$APT_DIR" -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::State::status=$APT_DIR/status" -o "Dir::Cache=$APT_DIR/cache"
    -o APT::Architecture=amd64 -o APT::Architectures=amd64
    -o APT::Sandbox::User=root  # download as root into our own dir (no _apt permissions)
)

log "apt-get update ($SUITE, side lists in $APT_DIR)"
apt-get -q "${APT_OPTS[@]}" update >&2 || die "apt-get update of $SUITE failed"

# The package closure: lines without indentation are packages; <name> are virtual ones (their
# providers are listed as packages too). Recommends and Suggests are not needed to run qemu-ga.
mapfile -t PKGS < <(
    apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "$AGENT_PKG" \
        | grep -v -e '^ ' -e '^<' | sort -u
)
((${#PKGS[@]} > 0)) || die "apt-cache depends $AGENT_PKG named nothing"
log "downloading ${#PKGS[@]} packages: ${PKGS[*]}"
rm -f "$DEBS"/*.deb
(cd "$DEBS" && apt-get -q "${APT_OPTS[@]}" download "${PKGS[@]}" >&2) \
    || die "apt-get download failed"
ls "$DEBS"/${AGENT_PKG}_*.deb >/dev/null 2>&1 || die "$AGENT_PKG was not downloaded"
touch "$DEBS/.complete"
log "$(ls "$DEBS"/*.deb | wc -l) packages, $(du -sk "$DEBS" | cut -f1) KiB in $DEBS"
