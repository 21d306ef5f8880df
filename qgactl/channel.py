"""A blocking channel to qemu-ga over a unix socket: connect, the guest-sync-delimited
handshake, send a request, read its reply within one Deadline.

Its own module so that the libvirt path never imports socket. The protocol itself (framing,
reply shapes, the bound on a reply) is wire.py's; choosing this channel is transport.py's.
"""

from __future__ import annotations

import os
import reprlib
import socket

from qgactl.errors import AgentTimeout, AgentUnavailable, NotFound, ProtocolError, QgactlError
from qgactl.wire import (
    DELIMITER,
    MAX_REPLY_BYTES,
    Deadline,
    Decoder,
    Reply,
    Trace,
    encode_request,
    parse_reply,
)

_RECV_CHUNK = 64 * 1024

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
        try:
            self._send(request, deadline, command)
            try:
                line = self._next_line(deadline, command)
            except (AgentTimeout, AgentUnavailable):
                if not expect_reply:
                    return None
                raise
        except BaseException:
            # Interrupted half way (a signal): half a request may sit in the agent's parser
            # and its reply may still come; the sync before the next command drops both.
            self._synced = False
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
