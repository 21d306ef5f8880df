"""qgactl's client of libvirtd's RPC (qgactl/virtrpc.py) against a fake daemon, for what the
real one does only when it wants to: a keepalive ping in the middle of a call, an event nobody
asked for, a reply cut short, a daemon that wants authentication. The real libvirtd is in
tests/vm/test_libvirt.py."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qgactl import virtrpc
from qgactl.virtrpc import HEADER

UUID = bytes(range(16))


def xdr_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">i", len(data)) + data + bytes(-len(data) % 4)


def message(
    program: int, procedure: int, kind: int, serial: int, status: int, body: bytes
) -> bytes:
    packed = HEADER.pack(program, 1, procedure, kind, serial, status) + body
    return struct.pack(">I", 4 + len(packed)) + packed


def error_body(code: int, text: str) -> bytes:
    return struct.pack(">ii", code, 10) + struct.pack(">i", 1) + xdr_string(text)


class FakeDaemon:
    """Answers each call with what ``answer(procedure, body)`` returns: a list of messages
    (bytes, sent as they are) whose last one is the reply; it records what came back."""

    def __init__(self, path: Path, answer: Callable[[int, int, bytes], list[bytes]]) -> None:
        self.answer = answer
        self.received: list[tuple[int, int, int]] = []  # program, procedure, type
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()

    def serve_one(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = conn.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    return
                (length,) = struct.unpack(">I", head)
                data = conn.recv(length - 4, socket.MSG_WAITALL)
                program, _, procedure, kind, serial, _ = HEADER.unpack_from(data)
                self.received.append((program, procedure, kind))
                if kind != virtrpc.CALL:
                    continue
                for reply in self.answer(procedure, serial, data[HEADER.size :]):
                    conn.sendall(reply)

    def close(self) -> None:
        self.listener.close()


def ok(
    procedure: int, serial: int, body: bytes = b"", program: int = virtrpc.REMOTE_PROGRAM
) -> bytes:
    return message(program, procedure, virtrpc.REPLY, serial, 0, body)


def libvirtd(procedure: int, serial: int, body: bytes) -> list[bytes]:
    """A daemon that lets anyone in and knows one domain, "vm1"."""
    if procedure == virtrpc.PROC_AUTH_LIST:
        return [ok(procedure, serial, struct.pack(">ii", 1, virtrpc.AUTH_NONE))]
    if procedure == virtrpc.PROC_OPEN:
        return [ok(procedure, serial)]
    if procedure == virtrpc.PROC_LOOKUP_BY_NAME:
        if body != xdr_string("vm1"):
            error = error_body(42, "Domain not found: no domain with matching name 'x'")
            return [message(virtrpc.REMOTE_PROGRAM, procedure, virtrpc.REPLY, serial, 1, error)]
        return [ok(procedure, serial, xdr_string("vm1") + UUID + struct.pack(">i", 7))]
    raise AssertionError(f"unexpected procedure {procedure}")


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeDaemon]]:
    made: list[FakeDaemon] = []

    def start(answer: Callable[[int, int, bytes], list[bytes]] = libvirtd) -> FakeDaemon:
        path = tmp_path / "libvirt-sock"
        monkeypatch.setattr(virtrpc, "SOCKETS", (str(tmp_path / "absent-sock"), str(path)))
        made.append(FakeDaemon(path, answer))
        return made[-1]

    yield start
    for fake in made:
        fake.close()


def no_libvirt_python(uuid: bytes) -> None:
    raise AssertionError("libvirt-python was asked for")


def test_an_agent_command_goes_through_a_keepalive_ping_and_an_event(daemon) -> None:
    def answer(procedure: int, serial: int, body: bytes) -> list[bytes]:
        if procedure != virtrpc.QEMU_PROC_AGENT_COMMAND:
            return libvirtd(procedure, serial, body)
        assert body.startswith(xdr_string("vm1") + UUID)
        ping = message(
            virtrpc.KEEPALIVE_PROGRAM, virtrpc.KEEPALIVE_PING, virtrpc.MESSAGE, 0, 0, b""
        )
        event = message(virtrpc.REMOTE_PROGRAM, 315, virtrpc.MESSAGE, 0, 0, b"\0" * 8)
        reply = struct.pack(">i", 1) + xdr_string('{"return":{}}')
        return [ping, event, ok(procedure, serial, reply, virtrpc.QEMU_PROGRAM)]

    fake = daemon(answer)
    client = virtrpc.connect(virtrpc.URI, 5, no_libvirt_python)
    assert client is not None
    domain = client.lookupByName("vm1")
    assert domain.name() == "vm1" and domain.UUIDString() == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert domain.agent_command('{"execute":"guest-ping"}', 5) == '{"return":{}}'
    pong = (virtrpc.KEEPALIVE_PROGRAM, virtrpc.KEEPALIVE_PONG, virtrpc.MESSAGE)
    give_up = time.monotonic() + 5
    while pong not in fake.received:  # the daemon's ping was answered, the call went on
        assert time.monotonic() < give_up, fake.received
        time.sleep(0.01)
    client.close()


def test_libvirtds_error_keeps_its_code_and_message(daemon) -> None:
    daemon()
    client = virtrpc.connect(virtrpc.URI, 5, no_libvirt_python)
    assert client is not None
    with pytest.raises(virtrpc.RpcError) as caught:
        client.lookupByName("x")
    assert caught.value.get_error_code() == 42
    assert caught.value.get_error_message() == "Domain not found: no domain with matching name 'x'"


def test_a_daemon_that_wants_authentication_is_left_to_libvirt_python(daemon) -> None:
    def polkit_only(procedure: int, serial: int, body: bytes) -> list[bytes]:
        assert procedure == virtrpc.PROC_AUTH_LIST, "nothing is tried after the auth list"
        return [ok(procedure, serial, struct.pack(">ii", 1, 2))]

    daemon(polkit_only)
    assert virtrpc.connect(virtrpc.URI, 5, no_libvirt_python) is None


def test_another_uri_or_no_socket_is_left_to_libvirt_python(daemon, monkeypatch) -> None:
    daemon()
    assert virtrpc.connect("qemu+ssh://host/system", 5, no_libvirt_python) is None
    assert virtrpc.connect("qemu:///session", 5, no_libvirt_python) is None
    monkeypatch.setattr(virtrpc, "SOCKETS", ("/nonexistent/libvirt-sock",))
    assert virtrpc.connect(virtrpc.URI, 5, no_libvirt_python) is None


def test_a_reply_cut_short_is_an_rpc_error_and_the_next_call_reconnects(daemon) -> None:
    calls = []

    def cut(procedure: int, serial: int, body: bytes) -> list[bytes]:
        if procedure != virtrpc.PROC_LOOKUP_BY_NAME:
            return libvirtd(procedure, serial, body)
        calls.append(serial)
        if len(calls) == 1:
            whole = ok(procedure, serial, xdr_string("vm1") + UUID + struct.pack(">i", 7))
            return [whole[:-10]]  # and then nothing: the client's deadline ends it
        return libvirtd(procedure, serial, body)

    daemon(cut)
    client = virtrpc.connect(virtrpc.URI, 1, no_libvirt_python)
    assert client is not None
    with pytest.raises(virtrpc.RpcError) as caught:
        client.lookupByName("vm1")
    assert caught.value.get_error_code() == virtrpc.VIR_ERR_RPC
    assert "did not answer within 1s" in caught.value.get_error_message()
    assert client.lookupByName("vm1").name() == "vm1"  # on a new connection


def test_anything_else_asked_of_a_domain_goes_to_libvirt_python(daemon) -> None:
    daemon()
    asked = []

    class VirDomain:
        def XMLDesc(self, flags: int) -> str:
            return "<domain/>"

    def resolve(uuid: bytes) -> VirDomain:
        asked.append(uuid)
        return VirDomain()

    client = virtrpc.connect(virtrpc.URI, 5, resolve)
    assert client is not None
    domain = client.lookupByName("vm1")
    assert asked == []  # not until something needs it
    assert domain.XMLDesc(0) == "<domain/>" and domain.XMLDesc(0) == "<domain/>"
    assert asked == [UUID]  # made once
