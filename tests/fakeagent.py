"""A scripted guest agent for the cases a real qemu-ga can't produce: hostile or broken agents.

``FakeAgent(scenario)`` is a unix-socket server in a background thread; use it as a context
manager (``with FakeAgent(silent) as agent: qgactl("--socket", agent.path, ...)``). Every client
that connects is handed, one after another, to ``scenario(peer)``: ``peer.sock`` is the connected
socket and ``Peer`` has the few helpers scenarios share (read the client's next request, answer
the guest-sync-delimited handshake). A client that goes away ends its scenario quietly; any other
exception in a scenario is raised again when the ``with`` block exits, so a broken fake can't
pass for a passing test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Any, Callable, Union

CLIENT_GONE = (BrokenPipeError, ConnectionResetError)


class Peer:
    """The connected client, seen from the agent's side."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_request(self) -> dict[str, Any] | None:
        """The client's next JSON request (0xFF before it dropped), or None once it has gone."""
        decoder = json.JSONDecoder()
        while True:
            # qgactl's requests are ASCII JSON (plus 0xFF): latin-1 keeps offsets == bytes.
            self._buffer = self._buffer.lstrip(b"\xff \r\n")
            if self._buffer:
                try:
                    request, end = decoder.raw_decode(self._buffer.decode("latin-1"))
                    self._buffer = self._buffer[end:]
                    return request
                except ValueError:
                    pass  # incomplete: read more
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buffer += data

    def read_sync(self) -> int | None:
        """Read the client's guest-sync-delimited request and return its id."""
        request = self.read_request()
        if request is None:
            return None
        assert request["execute"] == "guest-sync-delimited", request
        return int(request["arguments"]["id"])

    def sync(self, before_sentinel: bytes = b"") -> bool:
        """Answer the handshake as qemu-ga does (after ``before_sentinel``); False if gone."""
        sync_id = self.read_sync()
        if sync_id is None:
            return False
        self.send(before_sentinel + sentinel(sync_id))
        return True

    def wait_gone(self) -> None:
        """Read and ignore everything until the client closes."""
        while self.sock.recv(65536):
            pass


def sentinel(sync_id: int) -> bytes:
    """qemu-ga's reply to guest-sync-delimited: 0xFF, then the id."""
    return b"\xff" + json.dumps({"return": sync_id}).encode() + b"\n"


Scenario = Callable[[Peer], None]
Answer = Union[bytes, Callable[[Peer], None]]


class FakeAgent:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.directory = tempfile.mkdtemp(prefix="qgactl-fake-")
        self.path = os.path.join(self.directory, "qga.sock")
        self.connections = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._client: socket.socket | None = None
        self._errors: list[BaseException] = []

    def __enter__(self) -> FakeAgent:
        self._listener.bind(self.path)
        self._listener.listen(4)
        self._listener.settimeout(0.05)  # so the accept loop sees _stop
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)  # wake a scenario blocked in recv or send
            except OSError:
                pass
        self._thread.join(10)
        self._listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        assert not self._thread.is_alive(), "the fake agent's scenario did not stop"
        if self._errors:
            raise self._errors[0]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            self.connections += 1
            sock.settimeout(10)  # a scenario never outlives a stuck test by much
            self._client = sock
            try:
                self.scenario(Peer(sock))
            except CLIENT_GONE:
                pass
            except OSError as error:
                if not self._stop.is_set():  # shut down by __exit__ is fine
                    self._errors.append(error)
            except BaseException as error:  # surfaced by __exit__
                self._errors.append(error)
            finally:
                self._client = None
                sock.close()


# -- scenarios ------------------------------------------------------------------------------


def silent(peer: Peer) -> None:
    """Accepts the connection, reads everything, never answers."""
    peer.wait_gone()


def closes_at_once(peer: Peer) -> None:
    """Hangs up as soon as the client connects (the server closes the socket on return)."""


def serving(answer_for: Callable[[str], Answer], *, before_sentinel: bytes = b"") -> Scenario:
    """A well-behaved agent: syncs (after ``before_sentinel``), then answers each command.

    ``answer_for(command)`` is the bytes to send, or a function that does the sending (to
    stream or drip).
    """

    def scenario(peer: Peer) -> None:
        if not peer.sync(before_sentinel):
            return
        while (request := peer.read_request()) is not None:
            if request["execute"] == "guest-sync-delimited":
                peer.send(sentinel(request["arguments"]["id"]))
                continue
            answer = answer_for(request["execute"])
            if callable(answer):
                answer(peer)
            else:
                peer.send(answer)

    return scenario


def answering(reply: Answer) -> Scenario:
    """Syncs properly, then answers every command with ``reply``."""
    return serving(lambda command: reply)


PING_OK = b'{"return": {}}\n'

# junk lines, an empty one, the parse error the agent prints for our 0xFF, a bare 0xFF
JUNK = (
    b"garbage that is not json\n\n"
    b'{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\ufffd\'"}}\n'
    b"\xff[1, 2\n{{{{\n"
)


def junk_then_sync(peer: Peer) -> None:
    serving({"guest-ping": PING_OK}.__getitem__, before_sentinel=JUNK)(peer)


# replies meant for an earlier client, and the sentinel of an older sync
STALE = b'{"return": {}}\n{"return": {}}\n{"return": {"host-name": "stale"}}\n\xff{"return": 123}\n'


def stale_replies(peer: Peer) -> None:
    fresh = b'{"return": {"host-name": "fresh"}}\n'
    serving({"guest-get-host-name": fresh}.__getitem__, before_sentinel=STALE)(peer)


def wrong_sync_id(peer: Peer) -> None:
    """Answers every sync with a sentinel carrying the wrong id, over and over."""
    sync_id = peer.read_sync()
    if sync_id is None:
        return
    while True:
        peer.send(sentinel(sync_id + 1))
        time.sleep(0.05)


def wrong_sync_id_flood(peer: Peer) -> None:
    """Floods the sync with sentinels whose "id" is a 1 MiB string (escapes first), fast."""
    if peer.read_sync() is None:
        return
    flood = b"\xff" + _json_line({"return": NASTY["title"] + NASTY["bidi"] + "A" * (1 << 20)})
    while True:
        peer.send(flood)


def _endless(peer: Peer, start: bytes = b"") -> None:
    chunk = b"x" * (1 << 20)
    peer.send(start)
    while True:
        peer.send(chunk)


def endless_line_in_sync(peer: Peer) -> None:
    """Streams a line with no end instead of the sync reply, as fast as it can."""
    if peer.read_sync() is not None:
        _endless(peer)


def endless_line_reply(peer: Peer) -> None:
    """Syncs, then streams a reply line with no end."""
    answering(lambda peer: _endless(peer, b'{"return": "'))(peer)


HUGE_REPLY_MIB = 300


def _huge(peer: Peer) -> None:
    chunk = b"A" * (1 << 20)
    peer.send(b'{"return": "')
    for _ in range(HUGE_REPLY_MIB):
        peer.send(chunk)
    peer.send(b'"}\n')


def huge_reply(peer: Peer) -> None:
    """Syncs, then sends a valid 300 MiB reply (streamed, never held whole)."""
    answering(_huge)(peer)


DRIP_INTERVAL = 0.1  # well below -t 1: a per-recv timeout would never fire


def _drip(peer: Peer) -> None:
    for byte in b'{"return": {"host-name": "one byte at a time, forever and ever"}}\n':
        peer.send(bytes([byte]))
        time.sleep(DRIP_INTERVAL)


def drip(peer: Peer) -> None:
    """Syncs, then drips a valid reply one byte every 0.1 s (6.6 s in all)."""
    answering(_drip)(peer)


INVALID_UTF8 = b'{"return": {"host-name": "caf\xc3\x28 \x80\xfe"}}\n'
DEEP_NESTING = b'{"return": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
WRONG_SHAPES = {
    "list": b"[]\n",
    "unknown key": b'{"foo": 1}\n',
    "return and error": b'{"return": 1, "error": {}}\n',
    "error not an object": b'{"error": "x"}\n',
    "error without desc": b'{"error": {"class": "GenericError"}}\n',
    "bare number": b"42\n",
    "string": b'"return"\n',
}

# Terminal escapes: set the title, clear the screen, an 8-bit CSI, a right-to-left override;
# and rich markup that must show as text, not as style or a link.
NASTY = {
    "title": "\u001b]0;pwned\u0007",
    "clear": "\u001b[2J",
    "csi8": "\u009b31m",
    "bidi": "abc\u202edef",
    "markup": "[bold red]x[/]",
    "link": "[link=http://x]y[/link]",
}
NASTY_CHARS = ("\x1b", "\x07", "\x9b", "\u202e")

ESCAPES_OSINFO = {
    "name": "Plain Linux",
    "pretty-name": NASTY["title"] + " " + NASTY["markup"],  # the table shows this, not name
    "version": NASTY["clear"],
    "id": NASTY["csi8"],
    "kernel-release": NASTY["bidi"],
    "kernel-version": NASTY["link"],
    "machine": "x86_64",
}
ESCAPES_INFO = {
    "version": "7.2 " + NASTY["markup"] + NASTY["title"],
    "supported_commands": [
        {"name": "guest-ping", "enabled": True, "success-response": True},
        {"name": NASTY["link"] + NASTY["clear"], "enabled": True, "success-response": True},
        {"name": NASTY["bidi"] + NASTY["csi8"], "enabled": False, "success-response": False},
    ],
}


def _json_line(value: Any, *, ensure_ascii: bool = True) -> bytes:
    return json.dumps(value, ensure_ascii=ensure_ascii).encode() + b"\n"


def escapes(*, ensure_ascii: bool = True) -> Scenario:
    """Valid replies full of escapes and markup.

    ensure_ascii=True sends them as JSON escapes (\\u001b); False sends C1 and bidi characters
    as raw UTF-8, as JSON allows (C0 controls stay escaped: raw ones are invalid JSON).
    """
    answers = {
        "guest-get-osinfo": _json_line({"return": ESCAPES_OSINFO}, ensure_ascii=ensure_ascii),
        "guest-info": _json_line({"return": ESCAPES_INFO}, ensure_ascii=ensure_ascii),
        "guest-get-host-name": _json_line(
            {"return": {"host-name": "".join(NASTY.values())}}, ensure_ascii=ensure_ascii
        ),
    }
    return serving(answers.__getitem__)


AGENT_ERROR_DESC = "no " + NASTY["title"] + NASTY["clear"] + NASTY["csi8"] + NASTY["bidi"] + "\nL2"


def agent_error_with_escapes(peer: Peer) -> None:
    error = {"class": "GenericError" + NASTY["clear"], "desc": AGENT_ERROR_DESC}
    answering(_json_line({"error": error}, ensure_ascii=False))(peer)
