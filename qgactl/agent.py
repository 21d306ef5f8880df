"""One typed method per guest agent command, over any Transport.

``call`` is the raw escape hatch (command name + arguments -> the ``return`` value); the typed
methods build models from it. Errors from the agent come out as AgentCommandError with the
command, the error class and the guest's own description. No printing, no libvirt.
"""

from __future__ import annotations

from typing import Any

from qgactl.errors import ProtocolError, QgactlError
from qgactl.models import AgentInfo, OsInfo
from qgactl.transport import Transport
from qgactl.wire import Reply, encode_request


class Agent:
    def __init__(self, transport: Transport, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self.last_reply: Reply | None = None  # for -o raw: the reply as the agent sent it

    def call(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        expect_reply: bool = True,
    ) -> Any:
        """Run ``command`` and return its ``return`` value (None for a silent success)."""
        reply = self.send(encode_request(command, arguments), command, timeout, expect_reply)
        return None if reply is None else reply.result(command)

    def send(
        self,
        request: bytes,
        command: str,
        timeout: float | None = None,
        expect_reply: bool = True,
    ) -> Reply | None:
        """Send an encoded request and return the whole reply (``qgactl raw``)."""
        try:
            self.last_reply = self.transport.send(
                request, command, self.timeout if timeout is None else timeout, expect_reply
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
        """"thawed" or "frozen" (guest-fsfreeze-status works even while frozen)."""
        status = self.call("guest-fsfreeze-status")
        if status not in ("thawed", "frozen"):
            raise ProtocolError(f"guest-fsfreeze-status: unexpected status {status!r}")
        return str(status)
