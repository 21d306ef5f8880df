"""libvirtd's own RPC for the calls every agent command makes, without libvirt-python.

Importing libvirt-python costs each qgactl start about 40 ms (libvirtmod links libvirt.so and
a dozen libraries: `bench/run.py imports`), a third of a whole ping. A ping or a short exec
needs only three calls of libvirtd's protocol (src/rpc/virnetprotocol.x,
src/remote/remote_protocol.x, src/remote/qemu_protocol.x): open the connection, look the
domain up, and qemuAgentCommand. They are spoken here over the local daemon's unix socket, as
libvirt's own client speaks them (the same procedures, in the same order, seen with
LIBVIRT_LOG_FILTERS=1:rpc).

Only where that is exactly what libvirt-python would do: the local qemu:///system, which lets
this process in without authentication (root: libvirtd waves uid 0 past polkit). Anywhere else
``connect`` returns None and callers use libvirt-python, which also does everything else (XML,
events, listing domains, remote hosts); a ``Domain`` from here hands any other request to the
libvirt-python virDomain of the same UUID, made on first use.

No click, no printing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from typing import Any, Callable

URI = "qemu:///system"
# The modular daemon's socket first, as libvirt's client picks (remote_sockets.c).
SOCKETS = ("/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock")

REMOTE_PROGRAM = 0x20008086
QEMU_PROGRAM = 0x20008087
KEEPALIVE_PROGRAM = 0x6B656570  # "keep": libvirtd may ping a client that stays long
PROC_OPEN = 1
PROC_LOOKUP_BY_ID = 22
PROC_LOOKUP_BY_NAME = 23
PROC_LOOKUP_BY_UUID = 24
PROC_AUTH_LIST = 66
PROC_LIST_ALL_DOMAINS = 273
QEMU_PROC_AGENT_COMMAND = 3
KEEPALIVE_PING, KEEPALIVE_PONG = 1, 2
CALL, REPLY, MESSAGE = 0, 1, 2
STATUS_OK = 0
AUTH_NONE = 0

HEADER = struct.Struct(">IIiiIi")  # program, version, procedure, type, serial, status
MAX_MESSAGE = 32 * 1024 * 1024  # VIR_NET_MESSAGE_MAX: libvirtd sends nothing larger
# libvirtd answers an agent command within its own timeout plus its guest-sync (5 s); the
# socket waits that long and this much more before it gives the connection up.
SLACK = 10.0
VIR_ERR_RPC = 39
VIR_ERR_AUTH_FAILED = 45


class RpcError(Exception):
    """libvirtd's error (or a broken connection), read as transport.libvirt_error reads a
    libvirt.libvirtError."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def get_error_code(self) -> int:
        return self.code

    def get_error_message(self) -> str:
        return self.message


def connect(uri: str, timeout: float, resolve: Callable[[bytes], Any]) -> Client | None:
    """A client of the local libvirtd for ``uri``, or None where libvirt-python must do it.
    ``resolve`` gives a UUID's libvirt-python virDomain (see Domain)."""
    if uri != URI:
        return None
    path = next((path for path in SOCKETS if os.path.exists(path)), None)
    if path is None:
        return None
    client = Client(path, timeout, resolve)
    try:
        client.connection()  # whatever goes wrong here, libvirt-python says it best
    except RpcError:
        client.close()
        return None
    return client


class Client:
    """Connections to one libvirtd, one per thread: a call blocks until libvirtd answers
    (an agent command, for as long as the guest takes), so fan-out threads each get their own."""

    def __init__(self, path: str, timeout: float, resolve: Callable[[bytes], Any]) -> None:
        self.path = path
        self.timeout = timeout
        self.resolve = resolve  # a UUID's libvirt-python virDomain, for what Domain can't do
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.sock.fileno() < 0:  # none yet, or closed
            connection = _Connection.open(self.path, self.timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def call(self, program: int, procedure: int, arguments: bytes, timeout: float) -> _Reader:
        connection = self.connection()
        try:
            return connection.call(program, procedure, arguments, timeout)
        except RpcError as exc:
            if exc.code == VIR_ERR_RPC:  # the connection is broken: the next call opens anew
                self._local.connection = None
                connection.close()
                with self._lock, contextlib.suppress(ValueError):  # close() may have it
                    self._all.remove(connection)
            raise

    # libvirt-python's names: discover.Libvirt, targeting and completion call either.
    def lookupByID(self, domain_id: int) -> Domain:
        return self._lookup(PROC_LOOKUP_BY_ID, _int(domain_id))

    def lookupByUUIDString(self, text: str) -> Domain:
        return self._lookup(PROC_LOOKUP_BY_UUID, bytes.fromhex(text.replace("-", "")))

    def lookupByName(self, name: str) -> Domain:
        return self._lookup(PROC_LOOKUP_BY_NAME, _string(name))

    def listAllDomains(self, flags: int = 0) -> list[Domain]:
        need_results = _int(1)
        reply = self.call(
            REMOTE_PROGRAM, PROC_LIST_ALL_DOMAINS, need_results + _int(flags), self.timeout
        )
        return [self._domain(reply) for _ in range(reply.number())]

    def _lookup(self, procedure: int, arguments: bytes) -> Domain:
        return self._domain(self.call(REMOTE_PROGRAM, procedure, arguments, self.timeout))

    def _domain(self, reply: _Reader) -> Domain:
        """A remote_nonnull_domain out of a reply."""
        name, uuid, domain_id = reply.string(), reply.opaque(16), reply.number()
        return Domain(self, name, uuid, domain_id)

    def agent_command(self, domain: Domain, command: str, timeout: int) -> str | None:
        """qemuAgentCommand: the agent's reply as libvirt returns it (None: no reply)."""
        arguments = domain.wire + _string(command) + _int(timeout) + _int(0)
        reply = self.call(QEMU_PROGRAM, QEMU_PROC_AGENT_COMMAND, arguments, timeout + SLACK)
        return reply.optional_string()

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()


class Domain:
    """A domain looked up here: its name and UUID, and agent commands. Anything else asked of
    it (its XML, state, ID, libvirt-python's own handle) goes to the libvirt-python virDomain
    of its UUID, made on first use."""

    def __init__(self, client: Client, name: str, uuid: bytes, domain_id: int) -> None:
        self._client = client
        self._name = name
        self._uuid = uuid
        self._virdomain: Any = None
        self.wire = _string(name) + uuid + _int(domain_id)  # remote_nonnull_domain

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:  # libvirt-python's name
        hexa = self._uuid.hex()
        return f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"

    def agent_command(self, command: str, timeout: int) -> str | None:
        return self._client.agent_command(self, command, timeout)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # copy, pickle and friends: not a domain's business
            raise AttributeError(attribute)
        if self._virdomain is None:
            self._virdomain = self._client.resolve(self._uuid)
        return getattr(self._virdomain, attribute)

    def __repr__(self) -> str:
        return f"<virtrpc.Domain {self._name}>"


class _Connection:
    """One connection to libvirtd, opened as libvirt's client opens it (auth list, open)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.serial = 0

    @classmethod
    def open(cls, path: str, timeout: float) -> _Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection = cls(sock)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise RpcError(VIR_ERR_RPC, f"cannot connect to {path}: {exc.strerror}") from None
        try:
            methods = connection.call(REMOTE_PROGRAM, PROC_AUTH_LIST, b"", timeout)
            if AUTH_NONE not in [methods.number() for _ in range(methods.number())]:
                # libvirt-python negotiates it (connect() leaves such a daemon to it)
                raise RpcError(VIR_ERR_AUTH_FAILED, "libvirtd asks for authentication")
            name = _int(1) + _string(URI)  # remote_string: present, then the string
            connection.call(REMOTE_PROGRAM, PROC_OPEN, name + _int(0), timeout)
        except BaseException:
            connection.close()
            raise
        return connection

    def call(self, program: int, procedure: int, arguments: bytes, timeout: float) -> _Reader:
        serial = self.serial
        self.serial += 1
        header = HEADER.pack(program, 1, procedure, CALL, serial, STATUS_OK)
        try:
            self.sock.settimeout(timeout)
            self._send(header + arguments)
            while True:
                (got_program, _, got_procedure, kind, got_serial, status), body = self._receive()
                if got_program == KEEPALIVE_PROGRAM:
                    if got_procedure == KEEPALIVE_PING:
                        pong = (KEEPALIVE_PROGRAM, 1, KEEPALIVE_PONG, MESSAGE, 0, STATUS_OK)
                        self._send(HEADER.pack(*pong))
                    continue
                if kind == REPLY and got_serial == serial:
                    break  # anything else (an event) was not asked for: passed over
        except socket.timeout:
            raise RpcError(VIR_ERR_RPC, f"libvirtd did not answer within {timeout:g}s") from None
        except OSError as exc:
            raise RpcError(VIR_ERR_RPC, f"the connection to libvirtd failed: {exc}") from None
        reader = _Reader(body)
        if status != STATUS_OK:
            code, _domain = reader.number(), reader.number()
            raise RpcError(code, reader.optional_string() or "unknown libvirt error")
        return reader

    def _send(self, message: bytes) -> None:
        self.sock.sendall(struct.pack(">I", 4 + len(message)) + message)

    def _receive(self) -> tuple[tuple[int, ...], bytes]:
        (length,) = struct.unpack(">I", self._exactly(4))
        if not HEADER.size + 4 <= length <= MAX_MESSAGE + 4:
            raise OSError(f"a message of {length} bytes is not libvirt's")
        message = self._exactly(length - 4)
        return HEADER.unpack_from(message), message[HEADER.size :]

    def _exactly(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self.sock.recv(min(size, 1 << 20))
            if not chunk:
                raise OSError("libvirtd closed the connection")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()  # libvirtd closes its side of the connection on EOF


class _Reader:
    """XDR (RFC 4506) out of a reply body: big-endian 4-byte units, padded strings."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def number(self) -> int:
        (value,) = struct.unpack(">i", self.opaque(4))
        return int(value)

    def opaque(self, size: int) -> bytes:
        value = self.data[self.at : self.at + size]
        if len(value) != size:
            raise RpcError(VIR_ERR_RPC, "a reply from libvirtd ended early")
        self.at += size + (-size % 4)
        return value

    def string(self) -> str:
        return self.opaque(self.number()).decode(errors="replace")  # as the guest sent it

    def optional_string(self) -> str | None:
        return self.string() if self.number() else None


def _int(value: int) -> bytes:
    return struct.pack(">i", value)


def _string(text: str) -> bytes:
    data = text.encode()
    return _int(len(data)) + data + bytes(-len(data) % 4)
