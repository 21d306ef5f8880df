"""One typed method per guest agent command, over any Transport.

``call`` is the raw escape hatch (command name + arguments -> the ``return`` value); the typed
methods build models from it. Errors from the agent come out as AgentCommandError with the
command, the error class and the guest's own description. No printing, no libvirt.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

from qgactl.errors import ProtocolError, QgactlError
from qgactl.models import AgentInfo, Disk, Filesystem, OsInfo, TrimResult
from qgactl.transport import Transport
from qgactl.wire import Reply, encode_request

# Commands with "success-response": false in qga/qapi-schema.json: no reply when they work.
NO_SUCCESS_RESPONSE = frozenset(
    {"guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid"}
)


class Agent:
    def __init__(self, transport: Transport, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self.last_reply: Reply | None = None  # for -o raw: the reply as the agent sent it

    def call(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run ``command`` and return its ``return`` value (None for a silent success)."""
        reply = self.send(encode_request(command, arguments), command, timeout)
        return None if reply is None else reply.result(command)

    def send(self, request: bytes, command: str, timeout: float | None = None) -> Reply | None:
        """Send an encoded request and return the whole reply (``qgactl raw``); None for a
        command that does not answer on success and did not answer."""
        try:
            self.last_reply = self.transport.send(
                request,
                command,
                self.timeout if timeout is None else timeout,
                command not in NO_SUCCESS_RESPONSE,
            )
        except QgactlError as exc:
            exc.with_context(command=command, target=self.transport.target)
            raise
        return self.last_reply

    def close(self) -> None:
        self.transport.close()

    def ping(self) -> None:
        self.call("guest-ping")

    def info(self) -> AgentInfo:
        return AgentInfo.from_reply(self.call("guest-info"))

    def osinfo(self) -> OsInfo:
        return OsInfo.from_reply(self.call("guest-get-osinfo"))

    def fsfreeze_status(self) -> str:
        """The guest's state, "thawed" or "frozen" (this works even while frozen)."""
        status = self.call("guest-fsfreeze-status")
        if status not in ("thawed", "frozen"):
            raise ProtocolError(f"guest-fsfreeze-status: unexpected status {reprlib.repr(status)}")
        return str(status)

    # -- filesystems: freeze, thaw, trim, info (qga/qapi-schema.json) -------------------------

    def fsfreeze_freeze(
        self, mountpoints: Sequence[str] = (), *, timeout: float | None = None
    ) -> int:
        """Freeze every freezable filesystem, or only ``mountpoints`` (the agent ignores unknown
        ones); returns how many are frozen. On error the agent thaws them all again (schema)."""
        if mountpoints:
            arguments = {"mountpoints": list(mountpoints)}
            count = self.call("guest-fsfreeze-freeze-list", arguments, timeout=timeout)
        else:
            count = self.call("guest-fsfreeze-freeze", timeout=timeout)
        return self._count("guest-fsfreeze-freeze", count)

    def fsfreeze_thaw(self, *, timeout: float | None = None) -> int:
        """Thaw every frozen filesystem (there is no per-mountpoint thaw); returns how many."""
        return self._count("guest-fsfreeze-thaw", self.call("guest-fsfreeze-thaw", timeout=timeout))

    def fstrim(
        self, minimum: int | None = None, *, timeout: float | None = None
    ) -> tuple[TrimResult, ...]:
        arguments = None if minimum is None else {"minimum": minimum}
        return TrimResult.list_from_reply(self.call("guest-fstrim", arguments, timeout=timeout))

    def fsinfo(self) -> tuple[Filesystem, ...]:
        return Filesystem.list_from_reply(self.call("guest-get-fsinfo"))

    def disks(self) -> tuple[Disk, ...]:
        return Disk.list_from_reply(self.call("guest-get-disks"))

    @staticmethod
    def _count(command: str, value: Any) -> int:
        """The number of filesystems a freeze or thaw reports (a JSON int, never a bool)."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError(
                f"{command}: expected a count of filesystems, got {reprlib.repr(value)}"
            )
        return value
