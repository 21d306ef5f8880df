"""Typed results built from the agent's replies.

Each model is an immutable NamedTuple with ``from_reply`` (checks the shape of the guest's reply
and raises ProtocolError when it is wrong: the guest is untrusted) and ``to_json`` (what ``-o
json`` prints). Tables are drawn from the same models in render.py. Nothing here does I/O.

Lenient on what is missing, strict on what is wrong: a member the schema calls mandatory that
a reply lacks (agents other than qemu-ga, older or patched builds) becomes None, and
``noting_gaps`` tells the caller which ones were lacking; a member of the wrong type (a list
where an object belongs, a string where a number belongs) is a ProtocolError.
Members a model doesn't know (a newer agent's) are kept in its ``extra``, as sent, and
``to_json`` merges them in: the JSON holds everything the agent sent.

NamedTuple rather than a frozen dataclass: every command imports this module, and a NamedTuple
class costs ~0.05 ms to create where a frozen dataclass costs ~0.3 ms (nine of them: ~3 ms).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Callable, NamedTuple, TypeVar

from qgactl.replies import ExecStatus as ExecStatus  # every model is here too
from qgactl.replies import FileChunk as FileChunk
from qgactl.replies import check as _check
from qgactl.replies import optional as _optional

T = TypeVar("T")
NO_EXTRA: Mapping[str, Any] = MappingProxyType({})

# The mandatory members the replies being built lack ("guest-get-disks[].name"): a list while
# noting_gaps runs (in this thread), None otherwise.
_LACKING: ContextVar[list[str] | None] = ContextVar("qgactl_lacking", default=None)


def noting_gaps(build: Callable[..., T], *args: Any) -> tuple[T, list[str]]:
    """``build(*args)``, and one line per agent command whose reply lacked mandatory members:
    "guest-get-disks: reply lacks name, partition (shown empty)"."""
    token = _LACKING.set([])
    try:
        model = build(*args)
        lacking = _LACKING.get() or []
    finally:
        _LACKING.reset(token)
    members: dict[str, list[str]] = {}
    for path in lacking:
        command, _, member = path.replace("[]", "").partition(".")
        names = members.setdefault(command, [])
        if member not in names:
            names.append(member)
    lines = [
        f"{command}: reply lacks {', '.join(names)} (shown empty)"
        for command, names in members.items()
    ]
    return model, lines


def _required(reply: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """A mandatory member: checked when it is there, None (noted for noting_gaps) when the
    reply lacks it."""
    value = reply.get(key)
    if value is None:
        lacking = _LACKING.get()
        if lacking is not None:
            lacking.append(f"{what}.{key}")
        return None
    return _check(value, kind, f"{what}.{key}")


def _extra(reply: dict[str, Any], model: Any, **renamed: str) -> dict[str, Any]:
    """The members of ``reply`` that ``model`` doesn't know, as sent. Its fields are the
    schema's members with underscores for dashes, except ``renamed`` (field="member")."""
    known = {renamed.get(field, field.replace("_", "-")) for field in _members(model)}
    return {key: value for key, value in reply.items() if key not in known}


def _members(model: Any) -> tuple[str, ...]:
    """A model's fields that stand for members of the reply (all but ``extra``)."""
    return tuple(field for field in model._fields if field != "extra")


def _json_of(model: Any) -> dict[str, Any]:
    """A model as JSON-able data: nested models become objects, tuples lists, and the members
    it doesn't model are merged in under the agent's own names (a name the model uses for
    something else gets an "unmodelled-" prefix rather than being lost)."""
    data = {key: _plain(value) for key, value in model._asdict().items() if key != "extra"}
    for key, value in getattr(model, "extra", NO_EXTRA).items():
        data[f"unmodelled-{key}" if key in data else key] = value
    return data


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return _json_of(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _list_of(reply: Any, what: str, build: Any) -> tuple[Any, ...]:
    """A list reply ("returns": ['X'] in the schema), each entry built by ``build``."""
    return tuple(build(entry) for entry in _check(reply, list, what))


def _entries(reply: dict[str, Any], key: str, what: str, *, required: bool) -> list[Any]:
    """A list member (empty when an optional one is absent, or a mandatory one is lacking)."""
    if required:
        return _required(reply, key, list, what) or []
    return _optional(reply, key, list, what) or []


class CommandInfo(NamedTuple):
    name: str | None
    enabled: bool | None
    success_response: bool
    extra: Mapping[str, Any] = NO_EXTRA


class AgentInfo(NamedTuple):
    """guest-info: the agent's version and the commands it knows (None: the reply has no
    list, so which commands the agent has is unknown)."""

    version: str | None
    commands: tuple[CommandInfo, ...] | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any) -> AgentInfo:
        what = "guest-info"
        _check(reply, dict, what)
        entries = _required(reply, "supported_commands", list, what)
        commands = None
        if entries is not None:
            commands = tuple(
                sorted(
                    (_command(entry) for entry in entries),
                    key=lambda command: command.name or "",
                )
            )
        return cls(
            version=_required(reply, "version", str, what),
            commands=commands,
            extra=_extra(reply, cls, commands="supported_commands"),
        )

    @property
    def disabled(self) -> list[str]:
        return [c.name for c in self.commands or () if c.name and c.enabled is False]

    @property
    def enabled(self) -> frozenset[str]:
        """The commands the agent has and doesn't block (one that doesn't say is tried)."""
        return frozenset(c.name for c in self.commands or () if c.name and c.enabled is not False)

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


def _command(entry: Any) -> CommandInfo:
    what = "guest-info.supported_commands[]"
    _check(entry, dict, what)
    return CommandInfo(
        name=_required(entry, "name", str, what),
        enabled=_required(entry, "enabled", bool, what),
        success_response=_check(
            entry.get("success-response", True), bool, f"{what}.success-response"
        ),
        extra=_extra(entry, CommandInfo),
    )


class OsInfo(NamedTuple):
    """guest-get-osinfo: every field is optional in the schema (a guest may omit any)."""

    name: str | None
    pretty_name: str | None
    version: str | None
    version_id: str | None
    id: str | None
    kernel_release: str | None
    kernel_version: str | None
    machine: str | None
    variant: str | None
    variant_id: str | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any) -> OsInfo:
        what = "guest-get-osinfo"
        _check(reply, dict, what)
        # The schema's names use dashes; the model's use underscores.
        return cls(
            **{
                field: _optional(reply, field.replace("_", "-"), str, what)
                for field in _members(cls)
            },
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


# -- filesystems and disks: guest-get-fsinfo, guest-get-disks, guest-fstrim ---------------------
# Shapes from QEMU qga/qapi-schema.json (GuestFilesystemInfo, GuestDiskAddress, GuestDiskInfo,
# GuestFilesystemTrimResponse); optional members ("*name" there) may be absent on any guest.


class PciAddress(NamedTuple):
    """GuestPCIAddress; every field is -1 when the agent couldn't tell."""

    domain: int | None
    bus: int | None
    slot: int | None
    function: int | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any, what: str) -> PciAddress:
        _check(reply, dict, what)
        return cls(
            **{field: _required(reply, field, int, what) for field in _members(cls)},
            extra=_extra(reply, cls),
        )


class DiskAddress(NamedTuple):
    """GuestDiskAddress: where a disk sits (serial and dev since qemu-ga 3.1; s390x's
    ccw-address is kept unmodelled in ``extra``). The bus members are None when the agent
    left them out, or when libvirt gathered the data (virDomainGetGuestInfo passes on the
    serial and the device node alone: guestinfo.py)."""

    bus_type: str | None
    bus: int | None
    target: int | None
    unit: int | None
    pci_controller: PciAddress | None
    serial: str | None
    dev: str | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any, what: str) -> DiskAddress:
        _check(reply, dict, what)
        pci = _required(reply, "pci-controller", dict, what)
        return cls(
            bus_type=_required(reply, "bus-type", str, what),
            bus=_required(reply, "bus", int, what),
            target=_required(reply, "target", int, what),
            unit=_required(reply, "unit", int, what),
            pci_controller=None
            if pci is None
            else PciAddress.from_reply(pci, f"{what}.pci-controller"),
            serial=_optional(reply, "serial", str, what),
            dev=_optional(reply, "dev", str, what),
            extra=_extra(reply, cls),
        )


class Filesystem(NamedTuple):
    """One entry of guest-get-fsinfo. used/total bytes are optional (since 3.0, and absent
    when statvfs fails); total_bytes_privileged counts root's reserve too (since 9.1)."""

    name: str | None
    mountpoint: str | None
    type: str | None
    used_bytes: int | None
    total_bytes: int | None
    total_bytes_privileged: int | None
    disks: tuple[DiskAddress, ...]
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Filesystem, ...]:
        return _list_of(reply, "guest-get-fsinfo", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> Filesystem:
        what = "guest-get-fsinfo[]"
        _check(reply, dict, what)
        disks = _entries(reply, "disk", what, required=True)
        return cls(
            name=_required(reply, "name", str, what),
            mountpoint=_required(reply, "mountpoint", str, what),
            type=_required(reply, "type", str, what),
            used_bytes=_optional(reply, "used-bytes", int, what),
            total_bytes=_optional(reply, "total-bytes", int, what),
            total_bytes_privileged=_optional(reply, "total-bytes-privileged", int, what),
            disks=tuple(DiskAddress.from_reply(disk, f"{what}.disk[]") for disk in disks),
            extra=_extra(reply, cls, disks="disk"),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Disk(NamedTuple):
    """One entry of guest-get-disks (since qemu-ga 5.2; NVMe smart data stays unmodelled,
    in ``extra``)."""

    name: str | None
    partition: bool | None
    dependencies: tuple[str, ...]
    address: DiskAddress | None
    alias: str | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Disk, ...]:
        return _list_of(reply, "guest-get-disks", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> Disk:
        what = "guest-get-disks[]"
        _check(reply, dict, what)
        dependencies = _entries(reply, "dependencies", what, required=False)
        address = _optional(reply, "address", dict, what)
        return cls(
            name=_required(reply, "name", str, what),
            partition=_required(reply, "partition", bool, what),
            dependencies=tuple(_check(d, str, f"{what}.dependencies[]") for d in dependencies),
            address=None if address is None else DiskAddress.from_reply(address, f"{what}.address"),
            alias=_optional(reply, "alias", str, what),
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class TrimResult(NamedTuple):
    """One path of guest-fstrim: bytes trimmed, or the guest's error for that path."""

    path: str | None
    trimmed: int | None
    minimum: int | None
    error: str | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[TrimResult, ...]:
        _check(reply, dict, "guest-fstrim")
        return tuple(
            cls.from_reply(entry)
            for entry in _entries(reply, "paths", "guest-fstrim", required=True)
        )

    @classmethod
    def from_reply(cls, reply: Any) -> TrimResult:
        what = "guest-fstrim.paths[]"
        _check(reply, dict, what)
        return cls(
            path=_required(reply, "path", str, what),
            trimmed=_optional(reply, "trimmed", int, what),
            minimum=_optional(reply, "minimum", int, what),
            error=_optional(reply, "error", str, what),
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


# -- the guest's state: host name, users, time, network, vCPUs, memory, load, statistics -----
# Shapes from QEMU qga/qapi-schema.json (GuestHostName, GuestUser, GuestTimezone,
# GuestNetworkInterface, GuestNetworkRoute, GuestLogicalProcessor, GuestMemoryBlock,
# GuestLoadAverage, GuestDiskStatsInfo, GuestCpuStats); "*name" members may be absent.


def _number(reply: dict[str, Any], key: str, what: str) -> float | None:
    """A mandatory JSON number ('number' in the schema: an int or a float, never a bool)."""
    value = _required(reply, key, (int, float), what)
    return None if value is None else float(value)


def _counters(cls: Any, reply: Any, what: str, *, optional: bool) -> Any:
    """A struct of integer counters whose fields are the schema's members with underscores
    for dashes, every one optional or every one mandatory."""
    _check(reply, dict, what)
    member = _optional if optional else _required
    values = {field: member(reply, field.replace("_", "-"), int, what) for field in _members(cls)}
    return cls(**values, extra=_extra(reply, cls))


class HostName(NamedTuple):
    """guest-get-host-name (qemu-ga 2.10+)."""

    host_name: str | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any) -> HostName:
        what = "guest-get-host-name"
        _check(reply, dict, what)
        return cls(_required(reply, "host-name", str, what), _extra(reply, cls))

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class User(NamedTuple):
    """One of guest-get-users: login_time in seconds since the epoch (qemu-ga 7.2 sends whole
    seconds; the schema says 'number'); domain only on Windows."""

    user: str | None
    domain: str | None
    login_time: float | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[User, ...]:
        return _list_of(reply, "guest-get-users", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> User:
        what = "guest-get-users[]"
        _check(reply, dict, what)
        return cls(
            user=_required(reply, "user", str, what),
            domain=_optional(reply, "domain", str, what),
            login_time=_number(reply, "login-time", what),
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Timezone(NamedTuple):
    """guest-get-timezone: a name that may be only an abbreviation ("IST"), and the offset
    east of UTC in seconds (half and quarter hours exist)."""

    zone: str | None
    offset: int | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any) -> Timezone:
        what = "guest-get-timezone"
        _check(reply, dict, what)
        return cls(
            zone=_optional(reply, "zone", str, what),
            offset=_required(reply, "offset", int, what),
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class GuestTime(NamedTuple):
    """guest-get-time (nanoseconds since the epoch, UTC) and the host's clock read at the
    same moment (the middle of the call), so the difference is the guest's drift."""

    nanoseconds: int
    host_nanoseconds: int

    @classmethod
    def from_reply(cls, reply: Any, host_nanoseconds: int) -> GuestTime:
        return cls(_check(reply, int, "guest-get-time"), host_nanoseconds)

    @property
    def drift_seconds(self) -> float:
        """How far the guest's clock is ahead of the host's (negative: behind)."""
        return (self.nanoseconds - self.host_nanoseconds) / 1e9

    def to_json(self) -> dict[str, Any]:
        return {
            "utc": utc_text(self.nanoseconds),
            "nanoseconds": self.nanoseconds,
            "host_nanoseconds": self.host_nanoseconds,
            "drift_seconds": round(self.drift_seconds, 6),
        }


def utc_text(nanoseconds: float) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC with microseconds ("...T10:15:31.123456Z")."""
    import datetime  # here: ~1 ms of start-up that only time and users need

    seconds, rest = divmod(int(nanoseconds), 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.replace(microsecond=rest // 1000).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IpAddress(NamedTuple):
    address: str | None
    type: str | None  # "ipv4" or "ipv6" (GuestIpAddressType)
    prefix: int | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any) -> IpAddress:
        what = "guest-network-get-interfaces[].ip-addresses[]"
        _check(reply, dict, what)
        return cls(
            address=_required(reply, "ip-address", str, what),
            type=_required(reply, "ip-address-type", str, what),
            prefix=_required(reply, "prefix", int, what),
            extra=_extra(reply, cls, address="ip-address", type="ip-address-type"),
        )


class InterfaceStatistics(NamedTuple):
    """GuestNetworkInterfaceStat (qemu-ga 2.11+): counters since the interface came up."""

    rx_bytes: int | None
    rx_packets: int | None
    rx_errs: int | None
    rx_dropped: int | None
    tx_bytes: int | None
    tx_packets: int | None
    tx_errs: int | None
    tx_dropped: int | None
    extra: Mapping[str, Any] = NO_EXTRA


class NetworkInterface(NamedTuple):
    """One of guest-network-get-interfaces. Through libvirt (virDomainGetGuestInfo) there are
    no statistics."""

    name: str | None
    hardware_address: str | None
    addresses: tuple[IpAddress, ...]
    statistics: InterfaceStatistics | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[NetworkInterface, ...]:
        return _list_of(reply, "guest-network-get-interfaces", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> NetworkInterface:
        what = "guest-network-get-interfaces[]"
        _check(reply, dict, what)
        addresses = _entries(reply, "ip-addresses", what, required=False)
        statistics = reply.get("statistics")
        return cls(
            name=_required(reply, "name", str, what),
            hardware_address=_optional(reply, "hardware-address", str, what),
            addresses=tuple(IpAddress.from_reply(address) for address in addresses),
            statistics=None
            if statistics is None
            else _counters(InterfaceStatistics, statistics, f"{what}.statistics", optional=False),
            extra=_extra(reply, cls, addresses="ip-addresses"),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Route(NamedTuple):
    """One of guest-network-get-route (qemu-ga 9.1+, Linux: /proc/net/route and ipv6_route).
    IPv4 routes have gateway and mask; IPv6 routes nexthop, source and the prefix lengths
    (strings in the schema)."""

    iface: str | None
    destination: str | None
    metric: int | None
    version: int | None
    gateway: str | None
    mask: str | None
    desprefixlen: str | None
    source: str | None
    srcprefixlen: str | None
    nexthop: str | None
    flags: int | None
    refcnt: int | None
    use: int | None
    window: int | None
    mtu: int | None
    irtt: int | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Route, ...]:
        return _list_of(reply, "guest-network-get-route", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> Route:
        what = "guest-network-get-route[]"
        _check(reply, dict, what)
        strings = ("gateway", "mask", "desprefixlen", "source", "srcprefixlen", "nexthop")
        return cls(
            iface=_required(reply, "iface", str, what),
            destination=_required(reply, "destination", str, what),
            metric=_required(reply, "metric", int, what),
            version=_required(reply, "version", int, what),
            **{key: _optional(reply, key, str, what) for key in strings},
            **{
                key: _optional(reply, key, int, what)
                for key in ("flags", "refcnt", "use", "window", "mtu", "irtt")
            },
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Vcpu(NamedTuple):
    """GuestLogicalProcessor. The agent lists them in no particular order: list_from_reply
    sorts by logical_id."""

    logical_id: int | None
    online: bool | None
    can_offline: bool | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Vcpu, ...]:
        vcpus = _list_of(reply, "guest-get-vcpus", cls.from_reply)
        return tuple(sorted(vcpus, key=lambda vcpu: _order(vcpu.logical_id)))

    @classmethod
    def from_reply(cls, reply: Any) -> Vcpu:
        what = "guest-get-vcpus[]"
        _check(reply, dict, what)
        return cls(
            logical_id=_required(reply, "logical-id", int, what),
            online=_required(reply, "online", bool, what),
            can_offline=_optional(reply, "can-offline", bool, what),
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


def _order(index: int | None) -> tuple[bool, int]:
    """A sort key for ids a reply may lack: those without one go last."""
    return (index is None, index or 0)


class MemoryBlock(NamedTuple):
    """GuestMemoryBlock (sorted by phys_index: the agent's order is unspecified)."""

    phys_index: int | None
    online: bool | None
    can_offline: bool | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any) -> MemoryBlock:
        what = "guest-get-memory-blocks[]"
        _check(reply, dict, what)
        return cls(
            phys_index=_required(reply, "phys-index", int, what),
            online=_required(reply, "online", bool, what),
            can_offline=_optional(reply, "can-offline", bool, what),
            extra=_extra(reply, cls),
        )


class Memory(NamedTuple):
    """guest-get-memory-blocks with guest-get-memory-block-info's block size (bytes); the
    latter's other members (a newer agent's) in ``extra``."""

    block_size: int | None
    blocks: tuple[MemoryBlock, ...]
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_replies(cls, blocks: Any, info: Any) -> Memory:
        what = "guest-get-memory-block-info"
        _check(info, dict, what)
        size = _required(info, "size", int, what)
        found = _list_of(blocks, "guest-get-memory-blocks", MemoryBlock.from_reply)
        ordered = tuple(sorted(found, key=lambda block: _order(block.phys_index)))
        return cls(size, ordered, _extra(info, cls, block_size="size"))

    @property
    def online_bytes(self) -> int | None:
        if self.block_size is None:
            return None
        return self.block_size * sum(block.online is True for block in self.blocks)

    def to_json(self) -> dict[str, Any]:
        return {**_json_of(self), "online_bytes": self.online_bytes}


class LoadAverage(NamedTuple):
    """guest-get-load (qemu-ga 10.0+): the run-queue averages over 1, 5 and 15 minutes."""

    load1m: float | None
    load5m: float | None
    load15m: float | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, reply: Any) -> LoadAverage:
        what = "guest-get-load"
        _check(reply, dict, what)
        return cls(
            **{field: _number(reply, field, what) for field in _members(cls)},
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class DiskCounters(NamedTuple):
    """GuestDiskStats: /proc/diskstats' counters (sectors of 512 bytes, times in ms), each
    optional in the schema."""

    read_sectors: int | None
    read_ios: int | None
    read_merges: int | None
    write_sectors: int | None
    write_ios: int | None
    write_merges: int | None
    discard_sectors: int | None
    discard_ios: int | None
    discard_merges: int | None
    flush_ios: int | None
    read_ticks: int | None
    write_ticks: int | None
    discard_ticks: int | None
    flush_ticks: int | None
    ios_pgr: int | None
    total_ticks: int | None
    weight_ticks: int | None
    extra: Mapping[str, Any] = NO_EXTRA


class DiskStats(NamedTuple):
    """One of guest-get-diskstats (qemu-ga 7.1+, Linux)."""

    name: str | None
    major: int | None
    minor: int | None
    stats: DiskCounters
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[DiskStats, ...]:
        return _list_of(reply, "guest-get-diskstats", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> DiskStats:
        what = "guest-get-diskstats[]"
        _check(reply, dict, what)
        return cls(
            name=_required(reply, "name", str, what),
            major=_required(reply, "major", int, what),
            minor=_required(reply, "minor", int, what),
            stats=_counters(
                DiskCounters,
                _required(reply, "stats", dict, what) or {},
                f"{what}.stats",
                optional=True,
            ),
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class CpuStats(NamedTuple):
    """One of guest-get-cpustats (qemu-ga 7.1+): times in milliseconds (schema). The union has
    only a "linux" member so far; another type keeps its members unmodelled, in ``extra``."""

    type: str | None
    cpu: int | None
    user: int | None
    nice: int | None
    system: int | None
    idle: int | None
    iowait: int | None
    irq: int | None
    softirq: int | None
    steal: int | None
    guest: int | None
    guestnice: int | None
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[CpuStats, ...]:
        return _list_of(reply, "guest-get-cpustats", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> CpuStats:
        what = "guest-get-cpustats[]"
        _check(reply, dict, what)
        kind = _required(reply, "type", str, what)
        counters = _members(cls)[1:]
        if kind not in ("linux", None):
            empty = dict.fromkeys(counters)
            return cls(kind, **empty, extra={k: v for k, v in reply.items() if k != "type"})
        mandatory = ("cpu", "user", "nice", "system", "idle") if kind == "linux" else ()
        return cls(
            kind,
            **{
                key: (_required if key in mandatory else _optional)(reply, key, int, what)
                for key in counters
            },
            extra=_extra(reply, cls),
        )

    def to_json(self) -> dict[str, Any]:
        if self.type not in ("linux", None):  # a type this qgactl doesn't know: as sent
            return {"type": self.type, **self.extra}
        return _json_of(self)


class GuestInfo(NamedTuple):
    """``qgactl guestinfo``: the parts asked for that the agent has; None for the others
    (left out of the JSON)."""

    os: OsInfo | None = None
    hostname: HostName | None = None
    users: tuple[User, ...] | None = None
    timezone: Timezone | None = None
    fs: tuple[Filesystem, ...] | None = None
    disks: tuple[Disk, ...] | None = None
    net: tuple[NetworkInterface, ...] | None = None
    load: LoadAverage | None = None
    vcpus: tuple[Vcpu, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self._asdict().items() if value is not None}


# -- accounts and power: guest-ssh-get-authorized-keys (GuestAuthorizedKeys), guest-shutdown ------


class AuthorizedKeys(NamedTuple):
    """A guest user's ~/.ssh/authorized_keys, one key (OpenSSH format) a line."""

    user: str
    keys: tuple[str, ...]
    extra: Mapping[str, Any] = NO_EXTRA

    @classmethod
    def from_reply(cls, user: str, reply: Any) -> AuthorizedKeys:
        what = "guest-ssh-get-authorized-keys"
        _check(reply, dict, what)
        keys = _entries(reply, "keys", what, required=True)
        return cls(
            user,
            tuple(_check(key, str, f"{what}.keys[]") for key in keys),
            _extra(reply, cls, user="-"),  # the user is ours, not a member of the reply
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class PowerResult(NamedTuple):
    """What shutdown, reboot and suspend did: the request, and what --wait saw."""

    target: str
    action: str  # powerdown, halt, reboot, suspend-ram, suspend-disk, suspend-hybrid
    waited: bool
    outcome: str | None  # "shut off", "answers again" (after --wait), None without it
    seconds: float | None  # from the request to that outcome
    wake: str | None = None  # how to bring a suspended guest back

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)
