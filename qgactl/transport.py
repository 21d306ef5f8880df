"""How a request reaches the agent: straight to a unix socket, or through libvirt.

- ``Transport``: the seam (``send(request, command, timeout) -> Reply``); agent.py sees only it.
- ``SocketTransport``: a ``channel.SocketChannel`` (bare QEMU chardevs, dedicated channels).
- ``LibvirtTransport``: ``libvirt_qemu.qemuAgentCommand`` for the channel libvirt holds.
- ``libvirt_error``: the one place where a libvirt error becomes a qgactl error (by error code,
  never by message text, except where libvirt uses one code for two situations).

Not here: finding domains or reading their XML (discover.py), what commands mean (agent.py).
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any, Callable, Protocol

from qgactl.errors import (
    AgentCommandError,
    AgentTimeout,
    AgentUnavailable,
    InvalidUsage,
    LibvirtFailure,
    NotFound,
    ProtocolError,
    QgactlError,
)
from qgactl.wire import Deadline, Reply, Trace, parse_reply

# Sending these through qemuAgentCommand breaks the domain's agent inside libvirt until
# libvirtd restarts (PROTOCOL.md): libvirt runs its own guest-sync before every command.
SYNC_COMMANDS = frozenset({"guest-sync", "guest-sync-delimited"})


class Transport(Protocol):
    kind: str  # "socket" or "libvirt", for tables and `doctor`
    target: str  # the socket path or the domain name, for messages

    def send(
        self, request: bytes, command: str, timeout: float, expect_reply: bool = True
    ) -> Reply | None: ...

    def close(self) -> None: ...


class SocketTransport:
    """Direct to a unix socket; one connection, synchronised on connect and after timeouts."""

    kind = "socket"

    def __init__(self, path: str, *, trace: Trace | None = None) -> None:
        from qgactl.channel import SocketChannel  # socket: not on the libvirt path

        self.target = path
        self._channel = SocketChannel(path, trace=trace)

    def send(
        self, request: bytes, command: str, timeout: float, expect_reply: bool = True
    ) -> Reply | None:
        return self._channel.send(request, command, Deadline(timeout), expect_reply)

    def close(self) -> None:
        self._channel.close()


class LibvirtTransport:
    """Through libvirtd, which holds the domain's org.qemu.guest_agent.0 socket."""

    kind = "libvirt"

    def __init__(self, domain: Any, *, trace: Trace | None = None) -> None:
        self.domain = domain  # a libvirt.virDomain (its XML: fstrim's discard check)
        self.target = domain.name()
        self._trace = trace

    def send(
        self, request: bytes, command: str, timeout: float, expect_reply: bool = True
    ) -> Reply | None:
        if command in SYNC_COMMANDS:
            raise InvalidUsage(
                f"{command} is not allowed through libvirt",
                hint="libvirt synchronises by itself, and sending it breaks the domain's agent "
                "inside libvirtd; use --socket or a dedicated channel for it",
            )
        from qgactl import virtrpc

        # libvirt takes whole seconds; it also runs its own guest-sync first (up to 5 s),
        # which our timeout cannot bound.
        seconds = max(1, math.ceil(timeout))
        if isinstance(self.domain, virtrpc.Domain):
            errors: type[Exception] = virtrpc.RpcError
            call: Callable[[], str | None] = functools.partial(
                self.domain.agent_command, request.decode(), seconds
            )
        else:
            import libvirt
            import libvirt_qemu

            errors = libvirt.libvirtError
            call = functools.partial(
                libvirt_qemu.qemuAgentCommand, self.domain, request.decode(), seconds, 0
            )
        if self._trace:
            self._trace("-->", request)
        try:
            text = call()
        except errors as exc:
            error = libvirt_error(exc, domain=self.target, command=command)
            if not expect_reply and (isinstance(error, AgentTimeout) or error.data.get("gone")):
                # success-response false: silence, or the agent going away (the guest powered
                # off or rebooted; libvirt sometimes says "End of file"), is success
                return None
            raise error from None
        if text is None:
            raise ProtocolError(f"{command}: libvirt returned no reply", domain=self.target)
        if self._trace:
            self._trace("<--", text.encode())
        return parse_reply(text, command)

    def guest_info(self, types: int) -> dict[str, Any]:
        """virDomainGetGuestInfo: the guest-info parts ``types`` (VIR_DOMAIN_GUEST_INFO_*) in
        one RPC, as flat typed parameters ("user.0.name": ...); unflattened by guestinfo.py.
        libvirt applies its own agent timeout (5 s) here: there is no timeout argument."""
        import libvirt

        if self._trace:
            self._trace("-->", f"virDomainGetGuestInfo(types={types:#x})".encode())
        try:
            params = self.domain.guestInfo(types, 0)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, domain=self.target, command="virDomainGetGuestInfo") from None
        if self._trace:
            self._trace("<--", json.dumps(params).encode())
        return dict(params)

    def close(self) -> None:
        pass  # the connection belongs to discover.Libvirt


class AutoTransport:
    """libvirt first; if libvirt has no usable agent channel, the domain's dedicated socket.

    Asking libvirt straight away keeps the common case free of reading and parsing the domain
    XML (start-up time); ``find_socket`` reads it only after libvirt said "unavailable".
    """

    def __init__(
        self,
        first: LibvirtTransport,
        find_socket: Callable[[], str | None],
        *,
        trace: Trace | None = None,
    ) -> None:
        self._current: Transport = first
        self._find_socket: Callable[[], str | None] | None = find_socket
        self._trace = trace
        self.kind = first.kind
        self.target = first.target
        self.domain = first.domain
        self.fallback_reason: AgentUnavailable | None = None  # libvirt's error, for `doctor`

    def send(
        self, request: bytes, command: str, timeout: float, expect_reply: bool = True
    ) -> Reply | None:
        try:
            return self._current.send(request, command, timeout, expect_reply)
        except AgentUnavailable as exc:
            path = self._find_socket() if self._find_socket else None
            self._find_socket = None  # fall back once, never back and forth
            if path is None:
                raise
            self.fallback_reason = exc
        self._current = SocketTransport(path, trace=self._trace)
        self.kind, self.target = self._current.kind, self._current.target
        return self._current.send(request, command, timeout, expect_reply)

    @property
    def current(self) -> Transport:
        """The transport calls go through now (the socket, once auto has fallen back)."""
        return self._current

    def close(self) -> None:
        self._current.close()


def through_libvirt(transport: Transport) -> LibvirtTransport | None:
    """The LibvirtTransport that ``transport``'s calls go through, if they go through libvirt
    (for libvirt's own agent APIs such as virDomainGetGuestInfo); else None."""
    if isinstance(transport, AutoTransport):
        transport = transport.current
    return transport if isinstance(transport, LibvirtTransport) else None


# libvirt error codes (virterror.h); numbers, so mapping needs no import of libvirt.
VIR_ERR_INTERNAL_ERROR = 1
VIR_ERR_NO_SUPPORT = 3
VIR_ERR_NO_CONNECT = 5
VIR_ERR_SYSTEM_ERROR = 38
VIR_ERR_RPC = 39
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_AUTH_FAILED = 45
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_ARGUMENT_UNSUPPORTED = 74
VIR_ERR_AGENT_UNRESPONSIVE = 86
VIR_ERR_AGENT_UNSYNCED = 97

# libvirt folds an agent {"error": ...} into VIR_ERR_INTERNAL_ERROR with this text
# (qemu_agent.c, qemuAgentCheckError); the error class itself is lost on the way.
_AGENT_ERROR_TEXT = re.compile(r"unable to execute QEMU agent command '([^']*)': (.*)", re.S)

NOT_CONNECTED_HINT = (
    "is qemu-guest-agent installed and running in the guest? right after boot it can take a "
    "minute: qgactl ping --wait 60 DOMAIN"
)

# Code 86 with "not available due to an error": libvirt gave up on the channel (a reply over
# its 10 MiB QEMU_AGENT_MAX_RESPONSE leaves this behind, PROTOCOL.md). Measured: it never
# clears by itself, nor when libvirtd restarts; qemu-ga restarting in the guest clears it.
AGENT_IN_ERROR_HINT = (
    "libvirt stays in this state (an agent reply over 10 MiB leaves it behind) until qemu-ga "
    "restarts in the guest (kill -9: it hangs writing the rest of that reply) or the domain "
    "restarts; restarting libvirtd doesn't clear it. A dedicated channel still works "
    "(qgactl add-channel --name org.qemu.guest_agent.1 --path PATH DOMAIN)"
)


def libvirt_error(
    exc: Any, *, domain: str | None = None, command: str | None = None
) -> QgactlError:
    """Map a libvirt.libvirtError to the qgactl error with the right exit code and hint."""
    code = exc.get_error_code()
    message = (exc.get_error_message() or str(exc)).strip()
    where = f"{domain}: " if domain else ""
    context = {"domain": domain, "command": command, "libvirt_code": code}

    if code == VIR_ERR_NO_DOMAIN:
        return NotFound(
            f"domain {domain!r} not found" if domain else message,
            hint="`qgactl domains` lists the domains; -c URI picks another host",
            **context,
        )
    if code == VIR_ERR_OPERATION_INVALID and "not running" in message:
        return AgentUnavailable(
            f"{where}{message}", hint=f"start it first: virsh start {domain or 'DOMAIN'}", **context
        )
    if code == VIR_ERR_ARGUMENT_UNSUPPORTED and "agent" in message:
        return AgentUnavailable(
            f"{where}no guest agent channel is configured",
            hint=f"add one: qgactl add-channel {domain or 'DOMAIN'}",
            **context,
        )
    if code == VIR_ERR_AGENT_UNRESPONSIVE:
        # One code for "never connected", "went away", "in error" and "timed out": only the
        # text tells them apart (qemu_agent.c).
        if "not connected" in message:
            return AgentUnavailable(f"{where}{message}", hint=NOT_CONNECTED_HINT, **context)
        if "disappeared" in message:
            return AgentUnavailable(
                f"{where}{message}", hint=NOT_CONNECTED_HINT, gone=True, **context
            )
        if "due to an error" in message:
            return AgentUnavailable(
                f"{where}libvirt's channel to the guest agent is in error ({message})",
                hint=AGENT_IN_ERROR_HINT,
                agent_state="error",
                **context,
            )
        return AgentTimeout(
            f"{where}{command or 'agent command'}: no answer within the timeout ({message})",
            hint="the agent may be busy or hung; libvirt re-syncs on the next call (~5 s)",
            **context,
        )
    if code == VIR_ERR_AGENT_UNSYNCED:
        return ProtocolError(f"{where}{message}", hint="try again; libvirt re-syncs", **context)
    if code == VIR_ERR_INTERNAL_ERROR and "End of file from agent socket" in message:
        # qemu_agent.c: the agent's socket hung up (QEMU exited) during the command.
        return AgentUnavailable(
            f"{where}the guest agent's channel closed ({message})",
            hint="the domain stopped or the guest rebooted",
            gone=True,
            **context,
        )
    if code == VIR_ERR_INTERNAL_ERROR:
        match = _AGENT_ERROR_TEXT.search(message)
        if match:
            desc = match.group(2)
            # qemu-ga says CommandNotFound for unknown and for disabled commands alike.
            unknown = "has not been found" in desc or "has been disabled" in desc
            error_class = "CommandNotFound" if unknown else "GenericError"
            return AgentCommandError(match.group(1), error_class, desc).with_context(domain=domain)
    if "No complete agent response found" in message:
        # VIR_ERR_SYSTEM_ERROR, but libvirtd is fine: the reply passed QEMU_AGENT_MAX_RESPONSE,
        # and from now on libvirt's channel is in error (the case above).
        return ProtocolError(
            f"{where}{command or 'the agent'}: the reply is over libvirt's 10 MiB limit "
            f"({message})",
            hint=AGENT_IN_ERROR_HINT,
            **context,
        )
    if code in (VIR_ERR_NO_CONNECT, VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC, VIR_ERR_AUTH_FAILED):
        return LibvirtFailure(
            f"libvirt: {message}",
            hint="is libvirtd running, and is -c/--connect (or LIBVIRT_DEFAULT_URI) right?",
            **context,
        )
    if code == VIR_ERR_NO_SUPPORT:
        return LibvirtFailure(
            f"{where}{message}", hint="this libvirt driver does not support it", **context
        )
    return LibvirtFailure(f"{where}libvirt: {message}", **context)


def parse_user_request(text: str, arguments: str | None = None) -> tuple[bytes, str]:
    """``qgactl raw``: a JSON request, or a command name (+ JSON arguments) -> (bytes, command)."""
    stripped = text.strip()
    try:
        if stripped.startswith("{"):
            if arguments is not None:
                raise InvalidUsage("give arguments inside the JSON request, not both")
            message = json.loads(stripped)
        else:
            message = {"execute": stripped}
            if arguments is not None:
                message["arguments"] = json.loads(arguments)
    except ValueError as exc:
        raise InvalidUsage(
            f"not valid JSON: {exc}",
            hint='quote it for the shell: \'{"execute":"guest-ping"}\'',
        ) from None
    command = message.get("execute") if isinstance(message, dict) else None
    if not isinstance(command, str) or not command:
        raise InvalidUsage(
            'a request needs "execute": {"execute": "guest-info", "arguments": {...}}'
        )
    if "arguments" in message and not isinstance(message["arguments"], dict):
        raise InvalidUsage('"arguments" must be a JSON object')
    return json.dumps(message, separators=(",", ":")).encode(), command
