"""The QEMU guest agent's wire protocol, sans I/O.

What is here (stdlib only: no click, rich or libvirt, not even socket):
- ``Decoder``: sans-IO; feed it bytes in any chunks, get back reply lines and 0xFF delimiters.
  A line longer than the bound is refused as soon as the bound is passed, never buffered whole.
- ``encode_request`` / ``parse_reply``: one JSON object out; one line in, checked to be
  ``{"return": ...}`` or ``{"error": {"class": ..., "desc": ...}}`` and nothing else.
- ``Deadline``: one deadline for a whole call (connect, sync and command), not one per recv.

What is not: sockets (channel.py), choosing a transport, libvirt, printing. The facts this
follows are in qga/qapi-schema.json (guest-sync-delimited) and ../shared/PROTOCOL.md.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from qgactl.errors import AgentCommandError, ProtocolError

# The virtio-serial port names of the agent: qemu-ga listens on /dev/virtio-ports/
# org.qemu.guest_agent.0 by default, and libvirt connects to the channel of that name.
DEFAULT_CHANNEL = "org.qemu.guest_agent.0"
AGENT_PREFIX = "org.qemu.guest_agent."

# The agent writes 0xFF before its guest-sync-delimited reply, and a client sends 0xFF so the
# agent drops any half-parsed request. 0xFF never occurs in UTF-8, so it is a safe delimiter.
DELIMITER = b"\xff"

# guest-file-read returns at most 48 MB per call as base64 (64 MiB); guest-exec output is
# 16 MiB per stream. Nothing legitimate is larger than this; a hostile guest gets refused here.
MAX_REPLY_BYTES = 64 * 1024 * 1024

Trace = Callable[[str, bytes], None]
"""Called with ("-->", bytes sent) and ("<--", bytes received) when --debug is on."""


class Deadline:
    """A point in time that every step of one call shares."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


class Decoder:
    """Split the agent's byte stream into events: reply lines (bytes) and DELIMITER.

    Lines never contain 0xFF: a delimiter ends whatever partial line came before it (the
    agent's own delimiter precedes a sync reply; junk before it is discarded by design).
    """

    def __init__(self, max_line: int = MAX_REPLY_BYTES) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched, so dripped input stays O(n)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        events: list[bytes] = []
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            delimiter = self._buffer.find(DELIMITER, self._scanned)
            # The bound holds however the bytes were chunked: a line (or junk before a
            # delimiter) is refused even when its end came in the same chunk.
            ends = [end for end in (newline, delimiter) if end != -1]
            if (min(ends) if ends else len(self._buffer)) > self._max_line:
                raise ProtocolError(
                    f"the agent sent a reply longer than {self._max_line} bytes",
                    hint="a misbehaving or hostile guest agent; qgactl stopped reading",
                )
            if delimiter != -1 and (newline == -1 or delimiter < newline):
                del self._buffer[: delimiter + 1]
                self._scanned = 0
                events.append(DELIMITER)
            elif newline != -1:
                line = bytes(self._buffer[:newline]).strip()
                del self._buffer[: newline + 1]
                self._scanned = 0
                if line:
                    events.append(line)
            else:
                self._scanned = len(self._buffer)
                return events


def encode_request(command: str, arguments: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"execute": command}
    if arguments:
        message["arguments"] = arguments
    return json.dumps(message, separators=(",", ":")).encode()


class Reply:
    """One reply: the text as the agent sent it, and the decoded object."""

    __slots__ = ("message", "text")

    def __init__(self, text: str, message: dict[str, Any]) -> None:
        self.text = text
        self.message = message

    @property
    def is_error(self) -> bool:
        return "error" in self.message

    def result(self, command: str) -> Any:
        """The ``return`` value, or AgentCommandError for an ``error`` reply."""
        if self.is_error:
            error = self.message["error"]
            raise AgentCommandError(command, error["class"], error["desc"])
        return self.message["return"]


def parse_reply(line: bytes | str, command: str) -> Reply:
    """Decode one reply line and check its shape; anything unexpected is a ProtocolError."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(
            f"{command}: the agent sent a reply that is not JSON ({type(exc).__name__})",
            received=_preview(line),
            command=command,
        ) from None
    if isinstance(message, dict) and set(message) <= {"return", "id"} and "return" in message:
        return Reply(text, message)
    if isinstance(message, dict) and set(message) <= {"error", "id"} and "error" in message:
        error = message["error"]
        if (
            isinstance(error, dict)
            and isinstance(error.get("class"), str)
            and isinstance(error.get("desc"), str)
        ):
            return Reply(text, message)
    raise ProtocolError(
        f"{command}: the agent sent a reply of the wrong shape",
        hint='expected {"return": ...} or {"error": {"class": ..., "desc": ...}}',
        received=_preview(line),
        command=command,
    )


def _preview(data: bytes | str, limit: int = 200) -> str:
    text = data if isinstance(data, str) else data.decode("utf-8", "backslashreplace")
    return text[:limit] + ("..." if len(text) > limit else "")
