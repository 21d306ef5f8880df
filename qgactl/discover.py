"""libvirt: open a connection, resolve a domain as virsh does, and read its agent channels.

The live XML is the source of truth for channels: their names, socket paths and the
``state='connected'`` libvirt keeps for the agent (the cheap readiness check). libvirt is
imported here, lazily, and its habit of printing every error on stderr is switched off.
Not here: talking to the agent (transport.py), changing XML (xmlgen.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from qgactl.errors import InvalidUsage, NotFound
from qgactl.transport import libvirt_error
from qgactl.wire import DEFAULT_CHANNEL

if TYPE_CHECKING:
    from qgactl import virtrpc
    from qgactl.xmlgen import Channel

DEFAULT_URI = "qemu:///system"
RPC_TIMEOUT = 30.0  # virtrpc's open and lookups; an agent command waits as libvirtd says

# virDomainState, as virsh names them.
STATES = {
    0: "no state",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shut off",
    6: "crashed",
    7: "pmsuspended",
}


class DomainInfo(NamedTuple):
    name: str
    uuid: str
    id: int | None  # None when the domain is not running
    state: str
    channels: tuple[Channel, ...]  # agent channels only
    domain: Any = None  # the libvirt.virDomain, for LibvirtTransport

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def libvirt_channel(self) -> Channel | None:
        """The channel libvirt connects to and holds: the first named org.qemu.guest_agent.0
        (qemu_agent.c)."""
        return next((c for c in self.channels if c.name == DEFAULT_CHANNEL), None)

    @property
    def dedicated_channel(self) -> Channel | None:
        """A unix agent channel libvirt leaves alone, with a socket path qgactl can open."""
        return next(
            (c for c in self.channels if c.name != DEFAULT_CHANNEL and c.type == "unix" and c.path),
            None,
        )

    @property
    def agent_state(self) -> str:
        """none / configured / connected / disconnected: libvirt's channel, else a dedicated one."""
        channel = self.libvirt_channel or self.dedicated_channel
        if channel is None:
            return "none"
        return channel.state or "configured"

    def transport(self, choice: str = "auto", *, remote: bool = False) -> tuple[str, str | None]:
        """The transport rule: ("socket", path) or ("libvirt", None).

        auto: libvirt while its own channel (.0) is not known to be disconnected: it keeps its
        connection open, so a call costs ~3 ms, where a fresh client of a QEMU chardev waits
        ~20 ms (TCG) for the guest to notice it (measured: bench/run.py libvirt). A dedicated
        channel on a local host is used when libvirt's channel is missing or disconnected.
        """
        dedicated = self.dedicated_channel if not remote else None
        if choice == "libvirt":
            return "libvirt", None
        if choice == "socket":
            channel = dedicated or self.libvirt_channel
            if remote:
                raise InvalidUsage(
                    f"{self.name}: a remote host's agent socket can't be opened from here",
                    hint="use --transport libvirt (or auto)",
                )
            if channel is None or not channel.path:
                raise InvalidUsage(
                    f"{self.name}: no agent socket to open directly",
                    hint="add a dedicated channel: qgactl add-channel --name "
                    f"org.qemu.guest_agent.1 --path /run/qgactl/{self.name}.agent {self.name}",
                )
            return "socket", channel.path
        libvirt_channel = self.libvirt_channel
        usable = libvirt_channel is not None and libvirt_channel.state != "disconnected"
        fallback = self.fallback_socket(remote=remote)
        if fallback and not usable:
            return "socket", fallback
        return "libvirt", None

    def fallback_socket(self, *, remote: bool = False) -> str | None:
        """The dedicated channel's socket when libvirt's can't be used (missing, disconnected,
        or libvirt answers "unavailable"): on a local host, and not known to be disconnected."""
        dedicated = None if remote else self.dedicated_channel
        if dedicated is None or dedicated.state == "disconnected":
            return None
        return dedicated.path

    def to_json(self, *, remote: bool = False) -> dict[str, Any]:
        transport = self.transport(remote=remote)
        return {
            "name": self.name,
            "uuid": self.uuid,
            "id": self.id,
            "state": self.state,
            "agent": self.agent_state,
            "transport": transport[0],
            "socket": transport[1],
            "channels": [
                {"name": c.name, "type": c.type, "path": c.path, "state": c.state}
                for c in self.channels
            ],
        }


class Libvirt:
    """One host's libvirt, connected lazily: through qgactl's own client of libvirtd's RPC
    where it can (virtrpc: lookups and agent commands, without importing libvirt-python),
    else, and for everything else, through libvirt-python."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI
        self._conn: Any = None
        self._rpc: virtrpc.Client | None = None
        self._rpc_tried = False

    @property
    def is_remote(self) -> bool:
        """qemu+ssh://host/system and the like: their sockets are not on this machine."""
        # driver[+transport]://[user@]host[:port]/path: a host between "//" and the next "/".
        # (urllib.parse would do, at ~1.5 ms of start-up.)
        _, _, rest = self.uri.partition("://")
        return bool(rest.split("/", 1)[0])

    @property
    def conn(self) -> Any:
        if self._conn is None:
            import libvirt

            # libvirt prints every error to stderr by default; we report them ourselves.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise libvirt_error(exc).with_context(uri=self.uri) from None
        return self._conn

    @property
    def rpc(self) -> virtrpc.Client | None:
        """The virtrpc client of this host, or None where libvirt-python must do it."""
        if not self._rpc_tried:
            from qgactl import virtrpc

            self._rpc_tried = True
            self._rpc = virtrpc.connect(self.uri, RPC_TIMEOUT, self._by_uuid)
        return self._rpc

    def open(self) -> None:
        """Connect now, so that a host that is down fails here."""
        if self.rpc is None:
            self.conn  # noqa: B018

    def _by_uuid(self, uuid: bytes) -> Any:
        import libvirt

        try:
            return self.conn.lookupByUUID(uuid)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc).with_context(uri=self.uri) from None

    def close(self) -> None:
        if self._rpc is not None:
            self._rpc.close()
            self._rpc, self._rpc_tried = None, False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:  # closing a connection whose host went away
                pass

    def lookup(self, name: str) -> Any:
        """Resolve DOMAIN as virsh does: an ID, then a UUID, then a name."""
        from qgactl import virtrpc

        conn: Any = self.rpc
        errors: type[Exception] = virtrpc.RpcError
        if conn is None:
            import libvirt

            conn, errors = self.conn, libvirt.libvirtError
        attempts: list[Any] = []
        if name.isdigit():
            attempts.append(lambda: conn.lookupByID(int(name)))
        if _is_uuid(name):
            attempts.append(lambda: conn.lookupByUUIDString(name))
        attempts.append(lambda: conn.lookupByName(name))
        for attempt in attempts:
            try:
                return attempt()
            except errors as exc:
                error = libvirt_error(exc, domain=name)
                if not isinstance(error, NotFound):
                    raise error from None
        raise NotFound(
            f"domain {name!r} not found on {self.uri}",
            hint="`qgactl domains` lists the domains; -c URI picks another host",
            domain=name,
        )

    def describe(self, domain: Any) -> DomainInfo:
        """Name, state and agent channels of one domain, from its live XML."""
        import libvirt

        from qgactl.xmlgen import list_channels  # XML code: off the path of a plain ping

        try:
            state_code = domain.state()[0]
            xml = domain.XMLDesc(0)
            domain_id = domain.ID()
            info = DomainInfo(
                name=domain.name(),
                uuid=domain.UUIDString(),
                id=domain_id if domain_id >= 0 else None,
                state=STATES.get(state_code, "unknown"),
                channels=tuple(c for c in list_channels(xml) if c.is_agent),
                domain=domain,
            )
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, domain=domain.name()) from None
        return info

    def list_domains(self) -> list[DomainInfo]:
        import libvirt

        try:
            domains = self.conn.listAllDomains(0)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc) from None
        infos = []
        for domain in domains:
            try:
                infos.append(self.describe(domain))
            except NotFound:
                continue  # undefined while we were listing
        return sorted(infos, key=lambda info: info.name)


def _is_uuid(text: str) -> bool:
    """32 hex digits, dashes allowed, as libvirt's virUUIDParse accepts."""
    digits = text.replace("-", "")
    return len(digits) == 32 and all(char in "0123456789abcdefABCDEF" for char in digits)
