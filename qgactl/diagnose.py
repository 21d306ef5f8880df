"""Why doesn't the agent answer? Each check in order, with the fix for a failure, as data.

For a DOMAIN: libvirt, domain, channel (and the transport qgactl picks), connected, socket,
ping, version, frozen, disabled. For a socket PATH: socket, ping, version, frozen, disabled.
The first failure skips the checks after it (they could only fail the same way); a failed
check carries its error class's exit code (errors.ExitCode). ``frozen`` comes before
``disabled`` because a freeze disables nearly every command.

Who holds a socket comes from the kernel: the sock_diag netlink interface gives each unix
connection's peer (what `ss -xp` shows), /proc/*/fd the process owning that peer. qemu-ga serves
one client at a time, so a direct client waits while another one holds the channel.

``qgactl doctor`` renders these checks; ``qgactl.doctor()`` returns them. No click, no printing.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qgactl.errors import AgentCommandError, ExitCode, QgactlError

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.connector import Connector
    from qgactl.discover import DomainInfo
    from qgactl.xmlgen import Channel

DOMAIN_CHECKS = ("libvirt", "domain", "channel", "connected", "socket")
AGENT_CHECKS = ("ping", "version", "frozen", "disabled")
LIBVIRT_DAEMONS = ("libvirtd", "virtqemud")
UNKNOWN = "a process this user can't see"

WAIT_FIX = (
    "start the agent in the guest, or wait: the first answer can come a minute after boot "
    "(qgactl ping --wait 60 {domain})"
)
# How to start (and if needed install) the agent, by OS family. Debian's and Ubuntu's unit is
# static, started by udev when the port appears: `systemctl enable` there only prints a long
# warning, and `start` (or `restart`) is the clean fix (PROTOCOL.md, real Debian 12 guest).
START_FIX = {
    "debian": "Debian/Ubuntu: `systemctl start qemu-guest-agent` (udev starts it at boot; "
    "`apt install qemu-guest-agent` first if it is missing)",
    "rhel": "RHEL/Fedora: `systemctl enable --now qemu-guest-agent` "
    "(`dnf install qemu-guest-agent` first if it is missing)",
    "suse": "SUSE: `systemctl start qemu-guest-agent` "
    "(`zypper install qemu-guest-agent` first if it is missing)",
    "windows": "Windows: install the virtio-win guest tools (virtio-win-guest-tools.exe on the "
    "virtio-win ISO) and start the 'QEMU Guest Agent' service",
}
# libosinfo OS ids (http://debian.org/debian/12...) by vendor: the guest's OS family.
OS_FAMILIES = {
    "debian.org": "debian",
    "ubuntu.com": "debian",
    "redhat.com": "rhel",
    "fedoraproject.org": "rhel",
    "centos.org": "rhel",
    "rockylinux.org": "rhel",
    "almalinux.org": "rhel",
    "oracle.com": "rhel",
    "suse.com": "suse",
    "opensuse.org": "suse",
    "microsoft.com": "windows",
}


def start_fix(domain: str, os_id: str | None) -> str:
    """What to do about an agent that is not running: the way of the guest's OS when its
    domain XML records it (libosinfo metadata, written by virt-install), else every way."""
    vendor = (os_id or "").split("://")[-1].split("/")[0]
    family = OS_FAMILIES.get(vendor)
    ways = [START_FIX[family]] if family else list(START_FIX.values())
    return "; ".join([WAIT_FIX.format(domain=domain), *ways])


@dataclass
class Check:
    check: str
    status: str  # pass, fail or skipped
    detail: str | None = None
    fix: str | None = None
    exit_code: int = ExitCode.OK


class _Stop(Exception):
    """A check failed: the ones after it are skipped."""


class Doctor:
    """The checks of one agent: ``domain`` on the host ``uri``, or the socket ``socket``."""

    def __init__(
        self,
        connector: Connector,
        *,
        domain: str | None = None,
        socket: str | None = None,
        uri: str | None = None,
    ) -> None:
        self.connector = connector
        self.domain = domain
        self.socket = socket
        self.uri = uri
        self.checks: list[Check] = []

    def passed(self, check: str, detail: str) -> None:
        self.checks.append(Check(check, "pass", detail))

    def skipped(self, check: str, detail: str) -> None:
        self.checks.append(Check(check, "skipped", detail))

    def failed(self, check: str, detail: str, fix: str | None, code: int) -> _Stop:
        self.checks.append(Check(check, "fail", detail, fix, code))
        return _Stop()

    def error(self, check: str, exc: QgactlError) -> _Stop:
        return self.failed(check, exc.message, exc.hint, exc.exit_code)

    def run(self) -> list[Check]:
        """Every check, in order: passed, failed (with its fix) or skipped."""
        domain = self.domain
        names = [*(("socket",) if self.socket else DOMAIN_CHECKS), *AGENT_CHECKS]
        try:
            if self.socket:
                self.check_socket(self.socket, direct=True)
            else:
                assert domain is not None
                self.check_domain(domain)
            self.check_agent(domain)
        except _Stop:
            pass
        done = {check.check for check in self.checks}
        return self.checks + [Check(name, "skipped") for name in names if name not in done]

    # -- libvirt and the domain's XML ---------------------------------------------------------

    def check_domain(self, name: str) -> None:
        libvirt = self.connector.host(self.uri)
        try:
            version = libvirt.conn.getLibVersion()
        except QgactlError as exc:
            raise self.error("libvirt", exc) from None
        except Exception as exc:  # libvirtError from getLibVersion
            raise self.failed("libvirt", f"libvirt: {exc}", None, ExitCode.LIBVIRT) from None
        major, minor = divmod(version // 1000, 1000)
        self.passed("libvirt", f"{libvirt.uri} (libvirt {major}.{minor}.{version % 1000})")

        try:
            info = libvirt.describe(libvirt.lookup(name))
        except QgactlError as exc:
            raise self.error("domain", exc) from None
        if not info.running:
            raise self.not_running(info)
        self.passed("domain", f"{info.name} is running (id {info.id})")

        channel, path = self.check_channel(info)
        if channel.state in (None, "connected"):
            self.passed("connected", f"{channel.name}: {channel.state or 'state not reported'}")
        else:
            raise self.failed(
                "connected",
                f"{channel.name} is {channel.state}: the agent is not running in the guest, "
                "or has not started yet",
                start_fix(info.name, self.guest_os(info)),
                ExitCode.UNAVAILABLE,
            )
        if libvirt.is_remote:
            self.skipped("socket", "on the remote host")
        elif channel.path:
            self.check_socket(channel.path, direct=path is not None)
        else:
            self.skipped("socket", f"{channel.name} is a {channel.type} channel, not a socket")

    def guest_os(self, info: DomainInfo) -> str | None:
        """The guest's libosinfo OS id from its live XML, if it has one."""
        import libvirt

        from qgactl.xmlgen import guest_os_id

        try:
            return guest_os_id(info.domain.XMLDesc(0))
        except (libvirt.libvirtError, QgactlError):  # the fix is then only less specific
            return None

    def not_running(self, info: DomainInfo) -> _Stop:
        """A domain that is off: starting it helps only if its definition has an agent channel
        (the XML of a domain that is not running is its persistent definition)."""
        start = f"start it: virsh start {info.name}"
        names = ", ".join(c.name for c in info.channels)
        fix = start if names else f"no agent channel: qgactl add-channel {info.name}, then {start}"
        self.failed("domain", f"{info.name} is {info.state}", fix, ExitCode.UNAVAILABLE)
        if names:
            self.passed("channel", f"{names} in the persistent XML")
            return _Stop()
        return self.failed(
            "channel",
            "no guest agent channel in the persistent XML",
            f"qgactl add-channel {info.name}",
            ExitCode.UNAVAILABLE,
        )

    def check_channel(self, info: DomainInfo) -> tuple[Channel, str | None]:
        """The channel qgactl will use and its socket path (None: through libvirt)."""
        if not info.channels:
            raise self.failed(
                "channel",
                "no guest agent channel in the domain XML",
                f"add one: qgactl add-channel {info.name}",
                ExitCode.UNAVAILABLE,
            )
        try:
            remote = self.connector.host(self.uri).is_remote
            _kind, path = info.transport(self.connector.transport, remote=remote)
        except QgactlError as exc:
            raise self.error("channel", exc) from None
        channel = next((c for c in info.channels if path and c.path == path), None)
        channel = channel or info.libvirt_channel
        if channel is None:
            raise self.failed(
                "channel",
                "no org.qemu.guest_agent.0 channel, the only one libvirt talks to",
                f"use --transport socket, or add one: qgactl add-channel {info.name}",
                ExitCode.UNAVAILABLE,
            )
        names = ", ".join(c.name for c in info.channels)
        how = f"direct to {path}" if path else "through libvirt (qemuAgentCommand)"
        self.passed("channel", f"{names}; qgactl talks to {channel.name} {how}")
        return channel, path

    # -- the socket ---------------------------------------------------------------------------

    def check_socket(self, path: str, *, direct: bool) -> None:
        """The path is a socket; who listens; who holds it (a direct client would wait)."""
        try:
            mode = os.stat(path).st_mode
        except PermissionError:
            self.skipped("socket", f"{path}: not visible to this user")
            return
        except OSError as exc:
            raise self.failed(
                "socket",
                f"{path}: {exc.strerror}",
                "check the path: --socket names the chardev's socket (QEMU -chardev socket,path=)"
                if self.socket
                else "the path comes from the live XML: is the domain really running?",
                ExitCode.NOT_FOUND,
            ) from None
        if not stat.S_ISSOCK(mode):
            raise self.failed("socket", f"{path} is not a socket", None, ExitCode.NOT_FOUND)
        try:
            listeners, holders = socket_users(path)
        except OSError as exc:  # no sock_diag in this kernel, or not allowed
            self.passed("socket", f"{path} (who holds it is unknown: {exc.strerror or exc})")
            return
        if not listeners:
            raise self.failed(
                "socket",
                f"nothing listens on {path}",
                "the socket file is stale: is QEMU (or qemu-ga -m unix-listen) running?",
                ExitCode.UNAVAILABLE,
            )
        listening = f"{', '.join(listeners)} listens"
        if direct and holders:
            raise self.failed(
                "socket",
                f"{listening}; held by {', '.join(holders)}: the agent serves one client at a "
                "time, qgactl would wait",
                "close that client, or reach the agent another way (--transport libvirt for "
                "a domain's org.qemu.guest_agent.0)",
                ExitCode.UNAVAILABLE,
            )
        strangers = [h for h in holders if h != UNKNOWN and not h.startswith(LIBVIRT_DAEMONS)]
        if not direct and strangers:
            raise self.failed(
                "socket",
                f"{listening}; held by {', '.join(strangers)}, not by libvirt",
                "close that client; libvirt takes the channel back when the domain restarts",
                ExitCode.UNAVAILABLE,
            )
        held = f"held by {', '.join(holders)}" if holders else "free"
        self.passed("socket", f"{path}: {listening}; {held}")

    # -- the agent ----------------------------------------------------------------------------

    def check_agent(self, domain: str | None) -> None:
        try:
            agent = self.connector.open(domain, socket=self.socket, uri=self.uri)
        except QgactlError as exc:
            raise self.error("ping", exc) from None
        try:
            self.agent_checks(agent, domain)
        finally:
            agent.close()

    def agent_checks(self, agent: Agent, domain: str | None) -> None:
        try:
            started = time.perf_counter()
            agent.ping()
            elapsed = (time.perf_counter() - started) * 1000
        except QgactlError as exc:
            raise self.error("ping", exc) from None
        answered = f"answered in {elapsed:.1f} ms via {agent.transport.kind}"
        libvirt_error = getattr(agent.transport, "fallback_reason", None)
        if libvirt_error is not None and libvirt_error.data.get("agent_state") == "error":
            # auto fell back to the dedicated channel; libvirt's own users (virsh) still fail
            raise self.failed(
                "ping",
                f"{libvirt_error.message}; the dedicated channel {answered}",
                libvirt_error.hint,
                libvirt_error.exit_code,
            )
        self.passed("ping", answered)

        try:
            info = agent.info()
        except QgactlError as exc:
            raise self.error("version", exc) from None
        self.passed("version", f"qemu-ga {info.version}, {len(info.commands or ())} commands")

        try:
            status = agent.fsfreeze_status()
        except AgentCommandError as exc:
            self.skipped("frozen", exc.desc)  # blocked, or unsupported on the guest's OS
            status = None
        except QgactlError as exc:
            raise self.error("frozen", exc) from None
        if status == "frozen":
            thaw = (
                f"qgactl fsfreeze {domain} --thaw (or virsh domfsthaw {domain})"
                if domain
                else f"qgactl --socket {self.socket} fsfreeze --thaw"
            )
            raise self.failed(
                "frozen",
                "the guest's filesystems are frozen: the agent refuses most commands",
                f"thaw them: {thaw}",
                ExitCode.AGENT_ERROR,
            )
        if status:
            self.passed("frozen", status)

        disabled = info.disabled
        self.passed(
            "disabled",
            f"{', '.join(disabled)} (blocked in the guest's qemu-ga config, or unsupported "
            "on its OS)"
            if disabled
            else "none",
        )


def socket_users(path: str) -> tuple[list[str], list[str]]:
    """The processes listening on the unix socket ``path`` and those connected to it."""
    sockets = _unix_sockets()
    listen = [i for i, (name, state, _) in sockets.items() if name == path and state == _LISTEN]
    # accepted connections carry the listener's path; their peers are the clients
    peers = [peer for name, state, peer in sockets.values() if name == path and state == _ESTAB]
    owners = _socket_owners(set(listen) | set(peers))
    return [owners.get(i, UNKNOWN) for i in listen], [owners.get(i, UNKNOWN) for i in peers]


# sock_diag (linux/sock_diag.h, linux/unix_diag.h)
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_UDIAG_SHOW_NAME, _UDIAG_SHOW_PEER = 0x1, 0x4
_UNIX_DIAG_NAME, _UNIX_DIAG_PEER = 0, 2
_ESTAB, _LISTEN = 1, 10  # unix sockets report TCP's state numbers


def _unix_sockets() -> dict[int, tuple[str, int, int]]:
    """inode -> (bound path, TCP-style state, peer inode) of every unix stream socket."""
    request = struct.pack(
        "=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, _UDIAG_SHOW_NAME | _UDIAG_SHOW_PEER, 0, 0
    )
    header = struct.pack(
        "=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0
    )
    found: dict[int, tuple[str, int, int]] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as netlink:
        netlink.settimeout(1.0)
        netlink.sendto(header + request, (0, 0))
        while True:
            data = netlink.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR or length < 16:
                    raise OSError("sock_diag refused the request")
                _, _, state, _, inode = struct.unpack_from("=BBBBI", data, offset + 16)
                name, peer = "", 0
                attr, end = offset + 32, offset + length
                while attr + 4 <= end:
                    size, attr_type = struct.unpack_from("=HH", data, attr)
                    if size < 4:
                        break
                    value = data[attr + 4 : attr + size]
                    if attr_type == _UNIX_DIAG_NAME:
                        name = os.fsdecode(value.rstrip(b"\0"))
                    elif attr_type == _UNIX_DIAG_PEER:
                        peer = struct.unpack("=I", value[:4])[0]
                    attr += (size + 3) & ~3
                found[inode] = (name, state, peer)
                offset += (length + 3) & ~3


def _socket_owners(inodes: set[int]) -> dict[int, str]:
    """inode -> "comm (pid N)" for the processes with those sockets open (/proc/*/fd)."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners: dict[int, str] = {}
    if not wanted:
        return owners
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
            matches = [wanted[link] for link in links & wanted.keys()]
            if matches:
                with open(f"/proc/{pid}/comm") as comm_file:
                    comm = comm_file.read().strip()
                for inode in matches:
                    owners.setdefault(inode, f"{comm} (pid {pid})")
        except OSError:
            continue  # gone, or not ours to look at
    return owners
