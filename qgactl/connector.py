"""Reach an agent: a libvirt domain on a host, or an agent socket, over the right transport.

One ``Connector`` keeps one libvirt connection per host URI (opened on first use, shared by
fan-out threads) and turns "DOMAIN on URI" or "socket PATH" into an Agent:

- ``socket``: straight to the socket (bare QEMU, a dedicated channel).
- a domain with ``transport="libvirt"``: libvirt's qemuAgentCommand.
- ``transport="socket"``: the domain's dedicated channel socket (from its live XML).
- ``transport="auto"``: libvirt first, and the dedicated socket when libvirt says the agent is
  unavailable (DESIGN.md, "Transports").

The API (qgactl.api), the CLI's App, completion and the auto-thaw watchdog all open agents
here. No click, no printing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from qgactl.errors import AgentUnavailable, InvalidUsage

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.discover import DomainInfo, Libvirt
    from qgactl.wire import Trace

TRANSPORTS = ("auto", "libvirt", "socket")


class Connector:
    """Opens agents with one deadline per call (``timeout`` seconds) and one transport choice."""

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        transport: str = "auto",
        trace: Trace | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if transport not in TRANSPORTS:
            raise InvalidUsage(
                f"unknown transport {transport!r}", hint=f"one of {', '.join(TRANSPORTS)}"
            )
        self.timeout = timeout
        self.transport = transport
        self.trace = trace
        self.warn = warn  # told once what a reply lacked (Agent's warn)
        self._hosts: dict[str | None, Libvirt] = {}
        self._lock = threading.Lock()

    def host(self, uri: str | None) -> Libvirt:
        """The connection to one host (None: libvirt's default URI); thread-safe, and opened
        on first use of its ``conn``."""
        with self._lock:
            if uri not in self._hosts:
                from qgactl.discover import Libvirt

                self._hosts[uri] = Libvirt(uri)
            return self._hosts[uri]

    def open(
        self,
        domain: str | None = None,
        *,
        socket: str | None = None,
        uri: str | None = None,
        timeout: float | None = None,
    ) -> Agent:
        """An Agent for ``domain`` on the host ``uri``, or for the agent socket ``socket``."""
        from qgactl.agent import Agent
        from qgactl.transport import AutoTransport, LibvirtTransport, SocketTransport

        seconds = self.timeout if timeout is None else timeout
        trace = self.trace
        if socket:
            return Agent(SocketTransport(socket, trace=trace), seconds, warn=self.warn)
        if not domain:
            raise InvalidUsage("missing DOMAIN", hint="name a domain, or give a socket")
        host = self.host(uri)
        found = host.lookup(domain)
        if self.transport == "libvirt":
            return Agent(LibvirtTransport(found, trace=trace), seconds, warn=self.warn)
        if self.transport == "socket":
            _, path = running(host, found).transport("socket", remote=host.is_remote)
            assert path is not None
            return Agent(SocketTransport(path, trace=trace), seconds, warn=self.warn)

        def dedicated_socket() -> str | None:
            # libvirt said "unavailable": even when its channel looks connected (libvirt's own
            # error state, transport.AGENT_IN_ERROR_HINT), a dedicated channel may answer.
            info = host.describe(found)
            return info.fallback_socket(remote=host.is_remote) if info.running else None

        auto = AutoTransport(LibvirtTransport(found, trace=trace), dedicated_socket)
        return Agent(auto, seconds, warn=self.warn)

    def close(self) -> None:
        """Close every libvirt connection opened so far."""
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            host.close()


def running(host: Libvirt, found: Any) -> DomainInfo:
    """The domain's live description; AgentUnavailable when it is not running."""
    info = host.describe(found)
    if not info.running:
        raise AgentUnavailable(
            f"domain {info.name} is {info.state}",
            hint=f"start it first: virsh start {info.name}",
            domain=info.name,
        )
    return info
