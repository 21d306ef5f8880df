"""qgactl's exceptions and exit codes (stdlib only).

Every failure qgactl knows about is a ``QgactlError``; ``cli.main`` is the one place that turns it
into a one-line message, a hint and an exit code. The tree::

    QgactlError                  exit 1  (internal; the base is never raised directly)
     +-- InvalidUsage            exit 2  options that don't fit together
     +-- NotFound                exit 3  no such domain or socket
     +-- AgentUnavailable        exit 4  no channel, not connected, domain off, refused, closed
     |    +-- LaneRefused                the guest can't run a lane (no python3): use the agent
     |    +-- LaneLost                   a lane went away before its request ended
     +-- AgentTimeout            exit 5  the deadline passed
     +-- AgentCommandError       exit 6  the agent answered {"error": ...}
     +-- ProtocolError           exit 7  malformed, oversized or out-of-sync reply
     +-- XmlPatchRefused         exit 8  the domain XML can't be patched safely
     +-- LibvirtFailure          exit 9  any other libvirt error

Errors carry data (command, domain, error class, the bytes received) so that ``-o json`` and tests
can look at them without parsing text.
"""

from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    """The exit-code contract (README documents it, tests pin it)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    NOT_FOUND = 3
    UNAVAILABLE = 4
    TIMEOUT = 5
    AGENT_ERROR = 6
    PROTOCOL = 7
    XML_REFUSED = 8
    LIBVIRT = 9
    # exec passes the guest's status through and reports its own failures like `docker run`.
    EXEC_FAILED = 125
    INTERRUPTED = 130


class QgactlError(Exception):
    """Root of qgactl's errors: a message, an optional hint, and data for machines."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.data: dict[str, Any] = data

    def with_context(self, **data: Any) -> QgactlError:
        """Add context (a domain, a command) known only to an outer layer; keep what is set."""
        for key, value in data.items():
            self.data.setdefault(key, value)
        return self


class OutputClosed(QgactlError):
    """Whoever read stdout left (`qgactl ... | head`): not an error, nothing more to print."""

    exit_code = ExitCode.OK


class InvalidUsage(QgactlError):
    exit_code = ExitCode.USAGE


class NotFound(QgactlError):
    exit_code = ExitCode.NOT_FOUND


class AgentUnavailable(QgactlError):
    exit_code = ExitCode.UNAVAILABLE


class LaneRefused(AgentUnavailable):
    """The guest can't run a lane (qgactl/lane.py): no python3, no port. The agent still
    works: fall back to it."""


class LaneLost(AgentUnavailable):
    """The lane went away before its request ended (the guest rebooted or hangs, its master
    was killed): what the request did in the guest is unknown."""


class AgentTimeout(QgactlError):
    exit_code = ExitCode.TIMEOUT


class AgentCommandError(QgactlError):
    """The agent answered ``{"error": {"class": ..., "desc": ...}}``."""

    exit_code = ExitCode.AGENT_ERROR

    def __init__(
        self, command: str, error_class: str, desc: str, *, hint: str | None = None
    ) -> None:
        super().__init__(
            f"{command}: {error_class}: {desc}",
            hint=hint or _agent_error_hint(command, desc),
            command=command,
            error_class=error_class,
            desc=desc,
        )
        self.command = command
        self.error_class = error_class
        self.desc = desc

    @property
    def is_disabled(self) -> bool:
        """Blocked by -b, unsupported on this OS, or refused while frozen (qemu-ga's wording)."""
        return self.error_class == "CommandNotFound" and "disabled" in self.desc


class ProtocolError(QgactlError):
    exit_code = ExitCode.PROTOCOL


class XmlPatchRefused(QgactlError):
    exit_code = ExitCode.XML_REFUSED


class LibvirtFailure(QgactlError):
    exit_code = ExitCode.LIBVIRT


# The qemu-ga release that added each command ("Since:" in QEMU's qga/qapi-schema.json; 1.x and
# 0.15 commands are everywhere and left out). For telling a user why an agent lacks a command;
# what an agent supports is always read from guest-info, never guessed from its version.
ADDED_IN = {
    "guest-exec": "2.5",
    "guest-exec-status": "2.5",
    "guest-fsfreeze-freeze-list": "2.2",
    "guest-get-cpustats": "7.1",
    "guest-get-devices": "5.2",
    "guest-get-disks": "5.2",
    "guest-get-diskstats": "7.1",
    "guest-get-fsinfo": "2.2",
    "guest-get-host-name": "2.10",
    "guest-get-load": "10.0",
    "guest-get-memory-block-info": "2.3",
    "guest-get-memory-blocks": "2.3",
    "guest-get-osinfo": "2.10",
    "guest-get-timezone": "2.10",
    "guest-get-users": "2.10",
    "guest-network-get-route": "9.1",
    "guest-set-memory-blocks": "2.3",
    "guest-set-user-password": "2.3",
    "guest-ssh-add-authorized-keys": "5.2",
    "guest-ssh-get-authorized-keys": "5.2",
    "guest-ssh-remove-authorized-keys": "5.2",
}


def added_in(command: str) -> str:
    """' (added in qemu-ga X)' where the schema says, else '': for messages about a command
    that an agent lacks."""
    version = ADDED_IN.get(command)
    return f" (added in qemu-ga {version})" if version else ""


def _agent_error_hint(command: str, desc: str) -> str | None:
    """What to do about the agent's most common refusals (its own wording, qemu-ga 7.2)."""
    if command == "guest-set-time" and "not currently supported" in desc:
        # qemu-ga runs hwclock for it; Debian 12 moved hwclock to util-linux-extra, which
        # minimal and cloud images lack (PROTOCOL.md, "Seen on a real Debian 12 guest")
        return (
            "the guest has no hwclock, which the agent needs to set the clock: install it "
            "(Debian/Ubuntu: apt install util-linux-extra; RHEL, Fedora, SUSE: util-linux), then "
            "restart the agent (systemctl restart qemu-guest-agent): qemu-ga 7.2 keeps "
            "answering this until it restarts"
        )
    if "frozen state" in desc:
        return "the guest's filesystems are frozen: qgactl fsfreeze DOMAIN --thaw"
    if "has been disabled" in desc:
        return (
            f"{command} is blocked in the guest's qemu-ga or unsupported on its OS; to allow "
            "it, take it out of block-rpcs (--block-rpcs, /etc/qemu/qemu-ga.conf; BLACKLIST_RPC "
            "in /etc/sysconfig/qemu-ga on RHEL) or add it to allow-rpcs (qemu-ga 8.0+), and "
            "restart qemu-ga; `qgactl info` lists what is enabled"
        )
    if "has not been found" in desc:
        if command in ADDED_IN:
            return (
                f"this agent doesn't know {command}{added_in(command)}: update the guest's "
                "qemu-guest-agent (or it is not built for the guest's OS); `qgactl info` shows "
                "its version"
            )
        return "this agent doesn't know that command; `qgactl info` lists what it knows"
    return None
