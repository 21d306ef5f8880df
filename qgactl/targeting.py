"""Which agents a command (or qgactl.targets) talks to: DOMAIN names, UUIDs, IDs and globs,
--all, on every host given with -c, or the agent sockets given with --socket.

``resolve`` opens every host in a thread of its own with a deadline (-t): libvirt's open blocks
for as long as a listener that accepts but never answers keeps the socket (~30 s seen), so a
host that is down fails its own targets in time and holds up no other host. Names, UUIDs and
IDs are looked up later, by the job (as virsh does); globs and --all are matched here against
the host's list of domains.

No printing, no click.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from qgactl.errors import AgentTimeout, InvalidUsage, NotFound, QgactlError
from qgactl.wire import Deadline

if TYPE_CHECKING:
    from qgactl.discover import Libvirt

GLOB_CHARACTERS = "*?["


class Target(NamedTuple):
    """One agent: a domain on a host, or a socket. ``failure`` is set when it could not even
    be named (its host is down, a glob's host could not list)."""

    label: str  # the domain (as given, or matched by a glob) or the socket path
    host: str | None  # the -c URI; None for libvirt's default, or a socket
    domain: str | None = None
    socket: str | None = None
    failure: QgactlError | None = None


class Scope(Protocol):
    """Where targets are looked for: the CLI's App, or the API's fan-out (qgactl.api)."""

    @property
    def socket_paths(self) -> list[str]: ...
    @property
    def connect_uris(self) -> list[str]: ...
    @property
    def timeout(self) -> float: ...
    def host(self, uri: str | None) -> Libvirt: ...


class Targets(NamedTuple):
    items: list[Target]
    plural: bool  # several were asked for (a list, a glob, --all, hosts): output as a list
    hosts: int  # how many hosts: a HOST column when more than one


def resolve(app: Scope, words: Sequence[str], *, all_domains: bool = False) -> Targets:
    """The targets of a fan-out command, in the order given (host by host)."""
    if app.socket_paths:
        if words or all_domains:
            raise InvalidUsage(
                "give DOMAINs or --socket, not both", hint="with --socket, commands take no DOMAIN"
            )
        items = [Target(path, None, socket=path) for path in app.socket_paths]
        return Targets(items, len(items) > 1, 0)
    if not words and not all_domains:
        raise InvalidUsage(
            "missing DOMAIN",
            hint="name one or more domains (a 'glob*' too), --all, or use --socket PATH",
        )
    if words and all_domains:
        raise InvalidUsage("give DOMAINs or --all, not both")
    uris: list[str | None] = list(app.connect_uris) or [None]
    found: dict[str | None, list[Target]] = {}
    threads = [
        threading.Thread(
            target=_resolve_host, args=(app, uri, words, all_domains, found), daemon=True
        )
        for uri in uris
    ]
    for thread in threads:
        thread.start()
    deadline = Deadline(app.timeout)
    for uri, thread in zip(uris, threads):
        thread.join(max(0.0, deadline.remaining()))
        if thread.is_alive():  # libvirt.open is still blocked: this host is down
            found[uri] = _failed(uri, words, all_domains, _host_timeout(app, uri))
    items = list(dict.fromkeys(target for uri in uris for target in found[uri]))  # once each
    plural = len(words) > 1 or all_domains or len(uris) > 1 or any(map(is_glob, words))
    return Targets(items, plural, len(uris))


def _resolve_host(
    app: Scope,
    uri: str | None,
    words: Sequence[str],
    all_domains: bool,
    found: dict[str | None, list[Target]],
) -> None:
    try:
        host = app.host(uri)
        host.open()  # here, in this host's own thread
        targets: list[Target] = []
        if all_domains:
            targets = [Target(name, uri, domain=name) for name in _with_agent(host)]
        for word in words:
            if not is_glob(word):
                targets.append(Target(word, uri, domain=word))
                continue
            names = [d.name() for d in (host.rpc or host.conn).listAllDomains(0)]
            matched = sorted(name for name in names if fnmatch.fnmatchcase(name, word))
            if not matched:
                error = NotFound(f"no domain on {host.uri} matches {word!r}", domain=word)
                targets.append(Target(word, uri, failure=error))
            targets.extend(Target(name, uri, domain=name) for name in matched)
        found.setdefault(uri, targets)
    except QgactlError as exc:
        found.setdefault(uri, _failed(uri, words, all_domains, exc))
    except Exception as exc:  # libvirt's own errors while listing
        from qgactl.transport import libvirt_error

        found.setdefault(uri, _failed(uri, words, all_domains, libvirt_error(exc)))


def _with_agent(host: Libvirt) -> list[str]:
    """--all: the running domains that have an agent channel."""
    return [info.name for info in host.list_domains() if info.running and info.channels]


def _failed(
    uri: str | None, words: Sequence[str], all_domains: bool, error: QgactlError
) -> list[Target]:
    labels = list(words) or ["--all"]
    return [Target(label, uri, failure=error) for label in labels]


def _host_timeout(app: Scope, uri: str | None) -> QgactlError:
    shown = app.host(uri).uri
    return AgentTimeout(
        f"libvirt on {shown} did not answer within {app.timeout:g}s",
        hint="is the host up and its libvirtd running? -t raises the deadline",
        uri=shown,
    )


def is_glob(word: str) -> bool:
    """Whether a DOMAIN or --socket word is a shell glob."""
    return any(char in word for char in GLOB_CHARACTERS)
