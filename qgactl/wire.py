"""The QEMU guest agent's wire protocol, and a blocking channel over a unix socket.

What is here (stdlib only: no click, rich or libvirt):
- ``Decoder``: sans-IO; feed it bytes in any chunks, get back reply lines and 0xFF delimiters.
  A line longer than the bound is refused as soon as the bound is passed, never buffered whole.
- ``encode_request`` / ``parse_reply``: one JSON object out; one line in, checked to be
  ``{"return": ...}`` or ``{"error": {"class": ..., "desc": ...}}`` and nothing else.
- ``Deadline``: one deadline for a whole call (connect, sync and command), not one per recv.
- ``SocketChannel``: connect, the guest-sync-delimited handshake, send a request.

What is not: choosing a transport, libvirt, printing. The facts this follows are in
qga/qapi-schema.json (guest-sync-delimited) and ../shared/PROTOCOL.md.
"""

from __future__ import annotations

import json
import os
import reprlib
import socket
import time
from typing import Any, Callable

from qgactl.errors import (
    AgentCommandError,
    AgentTimeout,
    AgentUnavailable,
    NotFound,
    ProtocolError,
    QgactlError,
)

# The agent writes 0xFF before its guest-sync-delimited reply, and a client sends 0xFF so the
# agent drops any half-parsed request. 0xFF never occurs in UTF-8, so it is a safe delimiter.
DELIMITER = b"\xff"

# guest-file-read returns at most 48 MB per call as base64 (64 MiB); guest-exec output is
# 16 MiB per stream. Nothing legitimate is larger than this; a hostile guest gets refused here.
MAX_REPLY_BYTES = 64 * 1024 * 1024

_RECV_CHUNK = 64 * 1024

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


BUSY_HINT = (
    "is qemu-guest-agent running in the guest? another client (e.g. libvirtd) may hold this "
    "channel: a unix chardev serves one client at a time"
)


class SocketChannel:
    """A connection to qemu-ga over a unix socket (QEMU chardev, or qemu-ga -m unix-listen).

    Synchronises with guest-sync-delimited on connect and again after any timeout, so stale
    replies and a previous client's half-sent request never reach the next command.
    """

    def __init__(
        self, path: str, *, max_reply: int = MAX_REPLY_BYTES, trace: Trace | None = None
    ) -> None:
        self.path = path
        self._max_reply = max_reply
        self._trace = trace
        self._sock: socket.socket | None = None
        self._decoder = Decoder(max_reply)
        self._pending: list[bytes] = []
        self._synced = False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._synced = False
        self._decoder = Decoder(self._max_reply)
        self._pending = []

    def __enter__(self) -> SocketChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self, request: bytes, command: str, deadline: Deadline, expect_reply: bool = True
    ) -> Reply | None:
        """Send an encoded request (see encode_request) and return its reply.

        ``expect_reply=False`` is for commands the agent marks ``success-response: false``
        (guest-shutdown, guest-suspend-*): silence until the deadline, or the agent going
        away (the guest powered off), means success; an error reply still comes back.
        """
        self._ensure_synced(deadline)
        self._send(request, deadline, command)
        try:
            line = self._next_line(deadline, command)
        except (AgentTimeout, AgentUnavailable):
            if not expect_reply:
                return None
            self._synced = False  # a late reply may still come: re-sync before the next command
            raise
        return parse_reply(line, command)

    # -- connection and handshake -------------------------------------------------------

    def _ensure_synced(self, deadline: Deadline) -> None:
        if self._sock is None:
            self._connect(deadline)
        if not self._synced:
            self._sync(deadline)

    def _connect(self, deadline: Deadline) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(max(deadline.remaining(), 0.001))
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise self._connect_error(exc, deadline) from None
        self._sock = sock

    def _connect_error(self, exc: OSError, deadline: Deadline) -> QgactlError:
        if isinstance(exc, socket.timeout):
            return self._timeout("connecting", deadline)
        if isinstance(exc, FileNotFoundError) or not os.path.exists(self.path):
            return NotFound(
                f"no socket at {self.path}",
                hint="check the path (-chardev socket,path=... or the channel's source path)",
                socket=self.path,
            )
        if isinstance(exc, ConnectionRefusedError):
            return AgentUnavailable(
                f"connection refused on {self.path}",
                hint="nothing listens there: is the domain (or qemu-ga -m unix-listen) running?",
                socket=self.path,
            )
        if isinstance(exc, PermissionError):
            return AgentUnavailable(
                f"permission denied on {self.path}",
                hint="run as root or as the user that owns the socket",
                socket=self.path,
            )
        return AgentUnavailable(f"cannot connect to {self.path}: {exc.strerror}", socket=self.path)

    def _sync(self, deadline: Deadline) -> None:
        # qapi-schema.json, guest-sync-delimited: send 0xFF so the agent drops a half-parsed
        # request, then discard everything up to the agent's 0xFF and accept only our id.
        sync_id = int.from_bytes(os.urandom(8), "big") >> 1  # random 63-bit, never reused
        request = DELIMITER + encode_request("guest-sync-delimited", {"id": sync_id})
        self._send(request, deadline, "guest-sync-delimited")
        after_delimiter = False
        # Only the last wrong id is kept, and shortened: a hostile agent can send millions of
        # them, or an id that is a 60 MB string.
        wrong_id: str | None = None
        while True:
            try:
                event = self._next_event(deadline, "guest-sync-delimited")
            except AgentTimeout as exc:
                if wrong_id is not None:
                    raise ProtocolError(
                        f"the agent answered guest-sync-delimited with id {wrong_id}, "
                        f"expected {sync_id}",
                        hint="the channel is out of sync or not a guest agent",
                        socket=self.path,
                    ) from exc
                raise
            if event == DELIMITER:
                after_delimiter = True
                continue
            if not after_delimiter:
                continue  # junk, stale replies, the agent's parse error for our 0xFF
            after_delimiter = False
            try:
                answered = parse_reply(event, "guest-sync-delimited").message.get("return")
            except ProtocolError:
                continue  # junk after a stray 0xFF: keep waiting for our sentinel
            if answered == sync_id:
                self._synced = True
                return
            wrong_id = reprlib.repr(answered)  # a stale reply to an older sync: keep waiting

    # -- I/O with the deadline ----------------------------------------------------------

    def _send(self, data: bytes, deadline: Deadline, command: str) -> None:
        assert self._sock is not None
        if self._trace:
            self._trace("-->", data)
        try:
            self._sock.settimeout(self._time_left(deadline, command))
            self._sock.sendall(data)
        except socket.timeout:
            raise self._timeout(command, deadline) from None
        except OSError as exc:
            self.close()
            raise AgentUnavailable(
                f"{command}: the agent's socket closed while sending ({exc.strerror})",
                hint=BUSY_HINT,
                socket=self.path,
            ) from None

    def _next_line(self, deadline: Deadline, command: str) -> bytes:
        while True:
            event = self._next_event(deadline, command)
            if event != DELIMITER:
                return event

    def _next_event(self, deadline: Deadline, command: str) -> bytes:
        while not self._pending:
            assert self._sock is not None
            try:
                self._sock.settimeout(self._time_left(deadline, command))
                data = self._sock.recv(_RECV_CHUNK)
            except socket.timeout:
                raise self._timeout(command, deadline) from None
            except OSError as exc:
                self.close()
                raise AgentUnavailable(
                    f"{command}: connection to the agent failed ({exc.strerror})",
                    hint="the guest agent restarted or the domain stopped; try again",
                    socket=self.path,
                ) from None
            if not data:
                self.close()
                raise AgentUnavailable(
                    f"{command}: the agent closed the connection",
                    hint="the guest agent restarted or the domain stopped; try again",
                    socket=self.path,
                )
            if self._trace:
                self._trace("<--", data)
            try:
                self._pending.extend(self._decoder.feed(data))
            except ProtocolError:
                self.close()  # the stream is unusable past an oversized line
                raise
        return self._pending.pop(0)

    def _time_left(self, deadline: Deadline, command: str) -> float:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise self._timeout(command, deadline)
        return remaining

    def _timeout(self, command: str, deadline: Deadline) -> AgentTimeout:
        self._synced = False
        return AgentTimeout(
            f"{command}: no answer from the agent on {self.path} within {deadline.seconds:g}s",
            hint=BUSY_HINT,
            command=command,
            socket=self.path,
        )
