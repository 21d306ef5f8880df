"""What every command shares: the global options, the Terminal, libvirt, and agent targets.

``App`` is created once by the root group (cli.py) and handed to commands with ``@pass_app``.
It opens libvirt only when a command needs a domain, and turns "DOMAIN or --socket" (or a
fan-out's target) into the public API's ``Guest`` (qgactl/api.py): commands reach the guest
through it, as any Python user does. Commands live in
qgactl/commands/; nothing here prints except through the Terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click

from qgactl import completion
from qgactl.connector import Connector
from qgactl.errors import InvalidUsage
from qgactl.render import Terminal

if TYPE_CHECKING:
    from qgactl.api import Guest
    from qgactl.discover import Libvirt
    from qgactl.targeting import Target

F = TypeVar("F", bound=Callable[..., Any])


class App:
    def __init__(
        self,
        *,
        timeout: float,
        output: str,
        debug: bool,
        connect: str | Sequence[str] | None,
        transport: str,
        socket: str | Sequence[str] | None,
        jobs: int = 16,
    ) -> None:
        self.timeout = timeout
        self.output_requested = output  # before "auto" is resolved: exec and cat print bytes
        self.debug = debug
        self.connect_uris: list[str] = _listed(connect)
        self.transport_choice = transport
        self.socket_paths: list[str] = [path for given in _listed(socket) for path in _glob(given)]
        self.jobs = jobs
        self.terminal = Terminal(output, debug=debug)
        self.connector = Connector(
            timeout=timeout,
            transport=transport,
            trace=self.terminal.trace if debug else None,
            warn=self.terminal.warn,
        )

    @property
    def connect_uri(self) -> str | None:
        """The one -c/--connect URI of a single-host command (None: libvirt's default)."""
        if len(self.connect_uris) > 1:
            raise InvalidUsage(
                "this command talks to one host: give -c/--connect once",
                hint="ping, info, exec and the other fan-out commands take several",
            )
        return self.connect_uris[0] if self.connect_uris else None

    @property
    def socket_path(self) -> str | None:
        """The one --socket of a single-target command."""
        if len(self.socket_paths) > 1:
            raise InvalidUsage(
                f"this command talks to one agent, and --socket names {len(self.socket_paths)}",
                hint="ping, info, exec and the other fan-out commands take several",
            )
        return self.socket_paths[0] if self.socket_paths else None

    @property
    def libvirt(self) -> Libvirt:
        """The libvirt connection of a single-host command, opened on first use."""
        return self.host(self.connect_uri)

    def host(self, uri: str | None) -> Libvirt:
        """The connection to one host (thread-safe: fan-out threads share it)."""
        return self.connector.host(uri)

    def check_target(self, domain: str | None) -> None:
        """Exactly one of DOMAIN and --socket names the agent."""
        if self.socket_path and domain:
            raise InvalidUsage(
                f"give either DOMAIN ({domain}) or --socket, not both",
                hint="with --socket, commands take no DOMAIN",
            )
        if not self.socket_path and not domain:
            raise InvalidUsage("missing DOMAIN", hint="name a domain, or use --socket PATH")

    def guest(self, domain: str | None, *, look_up: bool = True) -> Guest:
        """The public API's Guest for DOMAIN (libvirt, or its dedicated socket) or for
        --socket PATH: what a single-target command works through. ``look_up`` finds the
        domain now, so that a wrong DOMAIN fails before the command reads any input (doctor
        says it as a check of its own)."""
        self.check_target(domain)
        guest = self._guest(domain, self.socket_path, self.connect_uri, None)
        if look_up:
            guest.agent  # noqa: B018 (opened on first use: this is the use)
        return guest

    def target_guest(self, target: Target, *, timeout: float | None = None) -> Guest:
        """The Guest for one of a fan-out's targets (``timeout``: its own deadline per call)."""
        return self._guest(target.domain, target.socket, target.host, timeout)

    def _guest(
        self, domain: str | None, socket: str | None, uri: str | None, timeout: float | None
    ) -> Guest:
        from qgactl.api import Guest

        # one Connector for the whole command: the libvirt connections are shared, and
        # closing a Guest closes its agent only
        return Guest(
            self.connector,
            domain=domain,
            socket=socket,
            uri=uri,
            owns_connector=False,
            timeout=timeout,
        )

    def split_domain(
        self, words: tuple[str, ...], usage: str, *, hint: str | None = None
    ) -> tuple[str | None, list[str]]:
        """``[DOMAIN] REST...``: DOMAIN is the first word unless --socket names the agent; REST
        must be the words ``usage`` names (e.g. "USER"), where a trailing word in brackets
        ("[ARGUMENTS]") may be left out."""
        rest = list(words)
        domain = None if self.socket_path or not rest else rest.pop(0)
        names = usage.split()
        needed = sum(not name.startswith("[") for name in names)
        if not needed <= len(rest) <= len(names):
            raise InvalidUsage(
                f"expected {'' if self.socket_path else 'DOMAIN '}{usage}",
                hint=hint or "with --socket, commands take no DOMAIN",
            )
        self.check_target(domain)
        return domain, rest


def _listed(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _glob(path: str) -> list[str]:
    """A quoted --socket glob ('/var/run/qemu-server/*.qga') expanded here; a path without
    wildcards, or a glob that matches nothing, stays as given (and fails as not found)."""
    from qgactl.targeting import is_glob

    if not is_glob(path):
        return [path]
    import glob

    return sorted(glob.glob(path)) or [path]


pass_app = click.make_pass_decorator(App)


def domain_argument(*, nargs: int = 1) -> Callable[[F], F]:
    """DOMAIN (name, UUID or ID), optional on the line because --socket replaces it."""
    return click.argument(
        "domain",
        nargs=nargs,
        required=False,
        metavar="[DOMAIN]" if nargs == 1 else "[DOMAIN]...",
        shell_complete=completion.complete_running_domains,
    )
