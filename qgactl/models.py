"""Typed results built from the agent's replies.

Each model is an immutable NamedTuple with ``from_reply`` (checks the shape of the guest's reply
and raises ProtocolError when it is wrong: the guest is untrusted) and ``to_json`` (what ``-o
json`` prints). Tables are drawn from the same models in render.py. Nothing here does I/O.

NamedTuple rather than a frozen dataclass: every command imports this module, and a NamedTuple
class costs ~0.05 ms to create where a frozen dataclass costs ~0.3 ms (nine of them: ~3 ms).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NamedTuple

from qgactl.errors import ProtocolError


def _check(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """Return ``value`` if it has the type the schema promises, else raise ProtocolError."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            f"unexpected reply from the agent: {what} is {type(value).__name__}",
            hint="the guest agent is misbehaving or is not qemu-ga",
        )
    return value


def _json_of(model: Any) -> dict[str, Any]:
    """A model as JSON-able data: nested models become objects, tuples lists."""
    return {key: _plain(value) for key, value in model._asdict().items()}


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return _json_of(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _optional(reply: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """An optional member ("*name" in the schema): None when absent, else checked."""
    value = reply.get(key)
    return None if value is None else _check(value, kind, f"{what}.{key}")


def _list_of(reply: Any, what: str, build: Any) -> tuple[Any, ...]:
    """A list reply ("returns": ['X'] in the schema), each entry built by ``build``."""
    return tuple(build(entry) for entry in _check(reply, list, what))


class CommandInfo(NamedTuple):
    name: str
    enabled: bool
    success_response: bool


class AgentInfo(NamedTuple):
    """guest-info: the agent's version and the commands it knows."""

    version: str
    commands: tuple[CommandInfo, ...]

    @classmethod
    def from_reply(cls, reply: Any) -> AgentInfo:
        _check(reply, dict, "guest-info")
        commands = []
        for entry in _check(reply.get("supported_commands"), list, "supported_commands"):
            _check(entry, dict, "supported_commands[]")
            commands.append(
                CommandInfo(
                    name=_check(entry.get("name"), str, "supported_commands[].name"),
                    enabled=_check(entry.get("enabled"), bool, "supported_commands[].enabled"),
                    success_response=_check(
                        entry.get("success-response", True), bool, "success-response"
                    ),
                )
            )
        return cls(
            version=_check(reply.get("version"), str, "guest-info.version"),
            commands=tuple(sorted(commands, key=lambda command: command.name)),
        )

    @property
    def disabled(self) -> list[str]:
        return [command.name for command in self.commands if not command.enabled]

    @property
    def enabled(self) -> frozenset[str]:
        return frozenset(command.name for command in self.commands if command.enabled)

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


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

    @classmethod
    def from_reply(cls, reply: Any) -> OsInfo:
        _check(reply, dict, "guest-get-osinfo")
        # The schema's names use dashes; the model's use underscores.
        return cls(
            **{
                field: _optional(reply, field.replace("_", "-"), str, "guest-get-osinfo")
                for field in cls._fields
            }
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


# -- filesystems and disks: guest-get-fsinfo, guest-get-disks, guest-fstrim ---------------------
# Shapes from QEMU qga/qapi-schema.json (GuestFilesystemInfo, GuestDiskAddress, GuestDiskInfo,
# GuestFilesystemTrimResponse); optional members ("*name" there) may be absent on any guest.


class PciAddress(NamedTuple):
    """GuestPCIAddress; every field is -1 when the agent couldn't tell."""

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def from_reply(cls, reply: Any, what: str) -> PciAddress:
        _check(reply, dict, what)
        return cls(
            **{field: _check(reply.get(field), int, f"{what}.{field}") for field in cls._fields}
        )


class DiskAddress(NamedTuple):
    """GuestDiskAddress: where a disk sits (serial and dev since qemu-ga 3.1; s390x's
    ccw-address is not kept). The bus members are None only when libvirt gathered the data
    (virDomainGetGuestInfo passes on the serial and the device node alone: guestinfo.py)."""

    bus_type: str | None
    bus: int | None
    target: int | None
    unit: int | None
    pci_controller: PciAddress | None
    serial: str | None
    dev: str | None

    @classmethod
    def from_reply(cls, reply: Any, what: str) -> DiskAddress:
        _check(reply, dict, what)
        pci = reply.get("pci-controller")
        return cls(
            bus_type=_check(reply.get("bus-type"), str, f"{what}.bus-type"),
            bus=_check(reply.get("bus"), int, f"{what}.bus"),
            target=_check(reply.get("target"), int, f"{what}.target"),
            unit=_check(reply.get("unit"), int, f"{what}.unit"),
            pci_controller=None
            if pci is None
            else PciAddress.from_reply(pci, f"{what}.pci-controller"),
            serial=_optional(reply, "serial", str, what),
            dev=_optional(reply, "dev", str, what),
        )


class Filesystem(NamedTuple):
    """One entry of guest-get-fsinfo. used/total bytes are optional (since 3.0, and absent
    when statvfs fails); total_bytes_privileged counts root's reserve too (since 9.1)."""

    name: str
    mountpoint: str
    type: str
    used_bytes: int | None
    total_bytes: int | None
    total_bytes_privileged: int | None
    disks: tuple[DiskAddress, ...]

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Filesystem, ...]:
        return _list_of(reply, "guest-get-fsinfo", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> Filesystem:
        what = "guest-get-fsinfo[]"
        _check(reply, dict, what)
        disks = _check(reply.get("disk", []), list, f"{what}.disk")
        return cls(
            name=_check(reply.get("name"), str, f"{what}.name"),
            mountpoint=_check(reply.get("mountpoint"), str, f"{what}.mountpoint"),
            type=_check(reply.get("type"), str, f"{what}.type"),
            used_bytes=_optional(reply, "used-bytes", int, what),
            total_bytes=_optional(reply, "total-bytes", int, what),
            total_bytes_privileged=_optional(reply, "total-bytes-privileged", int, what),
            disks=tuple(DiskAddress.from_reply(disk, f"{what}.disk[]") for disk in disks),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Disk(NamedTuple):
    """One entry of guest-get-disks (since qemu-ga 5.2; NVMe smart data is not kept)."""

    name: str
    partition: bool
    dependencies: tuple[str, ...]
    address: DiskAddress | None
    alias: str | None

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Disk, ...]:
        return _list_of(reply, "guest-get-disks", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> Disk:
        what = "guest-get-disks[]"
        _check(reply, dict, what)
        dependencies = _check(reply.get("dependencies", []), list, f"{what}.dependencies")
        address = reply.get("address")
        return cls(
            name=_check(reply.get("name"), str, f"{what}.name"),
            partition=_check(reply.get("partition"), bool, f"{what}.partition"),
            dependencies=tuple(_check(d, str, f"{what}.dependencies[]") for d in dependencies),
            address=None if address is None else DiskAddress.from_reply(address, f"{what}.address"),
            alias=_optional(reply, "alias", str, what),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class TrimResult(NamedTuple):
    """One path of guest-fstrim: bytes trimmed, or the guest's error for that path."""

    path: str
    trimmed: int | None
    minimum: int | None
    error: str | None

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[TrimResult, ...]:
        what = "guest-fstrim.paths[]"
        _check(reply, dict, "guest-fstrim")
        paths = _check(reply.get("paths"), list, "guest-fstrim.paths")
        results = []
        for entry in paths:
            _check(entry, dict, what)
            results.append(
                cls(
                    path=_check(entry.get("path"), str, f"{what}.path"),
                    trimmed=_optional(entry, "trimmed", int, what),
                    minimum=_optional(entry, "minimum", int, what),
                    error=_optional(entry, "error", str, what),
                )
            )
        return tuple(results)

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


# -- exec and files: guest-exec-status, guest-file-read (qga/qapi-schema.json) -------------------


def _base64(reply: dict[str, Any], key: str, what: str) -> bytes:
    """An optional base64 member ("out-data", "buf-b64") decoded; a bad encoding is the guest's
    fault, not ours."""
    text = _optional(reply, key, str, what)
    if text is None:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            f"unexpected reply from the agent: {what}.{key} is not base64"
        ) from None


class ExecStatus(NamedTuple):
    """guest-exec-status: running, or exited with a code or a signal (and captured output when
    guest-exec asked for it, at most 16 MiB a stream in qemu-ga)."""

    exited: bool
    exit_code: int | None
    signal: int | None
    out_data: bytes
    err_data: bytes
    out_truncated: bool
    err_truncated: bool

    @classmethod
    def from_reply(cls, reply: Any) -> ExecStatus:
        what = "guest-exec-status"
        _check(reply, dict, what)
        return cls(
            exited=_check(reply.get("exited"), bool, f"{what}.exited"),
            exit_code=_optional(reply, "exitcode", int, what),
            signal=_optional(reply, "signal", int, what),
            out_data=_base64(reply, "out-data", what),
            err_data=_base64(reply, "err-data", what),
            out_truncated=bool(_optional(reply, "out-truncated", bool, what)),
            err_truncated=bool(_optional(reply, "err-truncated", bool, what)),
        )


class FileChunk(NamedTuple):
    """guest-file-read: the bytes read and whether the end of the file was reached."""

    data: bytes
    eof: bool

    @classmethod
    def from_reply(cls, reply: Any, asked: int) -> FileChunk:
        what = "guest-file-read"
        _check(reply, dict, what)
        data = _base64(reply, "buf-b64", what)
        count = _check(reply.get("count"), int, f"{what}.count")
        if count != len(data) or count > asked:
            raise ProtocolError(
                f"unexpected reply from the agent: {what} says {count} bytes, sent {len(data)} "
                f"(asked for at most {asked})"
            )
        return cls(data, _check(reply.get("eof"), bool, f"{what}.eof"))


# -- the guest's state: host name, users, time, network, vCPUs, memory, load, statistics -----
# Shapes from QEMU qga/qapi-schema.json (GuestHostName, GuestUser, GuestTimezone,
# GuestNetworkInterface, GuestNetworkRoute, GuestLogicalProcessor, GuestMemoryBlock,
# GuestLoadAverage, GuestDiskStatsInfo, GuestCpuStats); "*name" members may be absent.


def _number(value: Any, what: str) -> float:
    """A JSON number ('number' in the schema: an int or a float, never a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _check(value, float, what)  # raises
    return float(value)


def _counters(cls: Any, reply: Any, what: str, *, optional: bool) -> Any:
    """A struct of integer counters whose fields are the schema's members with underscores
    for dashes, every one optional or every one required."""
    _check(reply, dict, what)
    values = {}
    for field in cls._fields:
        key = field.replace("_", "-")
        if optional:
            values[field] = _optional(reply, key, int, what)
        else:
            values[field] = _check(reply.get(key), int, f"{what}.{key}")
    return cls(**values)


class HostName(NamedTuple):
    """guest-get-host-name (qemu-ga 2.10+)."""

    host_name: str

    @classmethod
    def from_reply(cls, reply: Any) -> HostName:
        _check(reply, dict, "guest-get-host-name")
        return cls(_check(reply.get("host-name"), str, "guest-get-host-name.host-name"))

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class User(NamedTuple):
    """One of guest-get-users: login_time in seconds since the epoch (qemu-ga 7.2 sends whole
    seconds; the schema says 'number'); domain only on Windows."""

    user: str
    domain: str | None
    login_time: float

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[User, ...]:
        return _list_of(reply, "guest-get-users", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> User:
        what = "guest-get-users[]"
        _check(reply, dict, what)
        return cls(
            user=_check(reply.get("user"), str, f"{what}.user"),
            domain=_optional(reply, "domain", str, what),
            login_time=_number(reply.get("login-time"), f"{what}.login-time"),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Timezone(NamedTuple):
    """guest-get-timezone: a name that may be only an abbreviation ("IST"), and the offset
    east of UTC in seconds (half and quarter hours exist)."""

    zone: str | None
    offset: int

    @classmethod
    def from_reply(cls, reply: Any) -> Timezone:
        what = "guest-get-timezone"
        _check(reply, dict, what)
        return cls(
            zone=_optional(reply, "zone", str, what),
            offset=_check(reply.get("offset"), int, f"{what}.offset"),
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
    address: str
    type: str  # "ipv4" or "ipv6" (GuestIpAddressType)
    prefix: int

    @classmethod
    def from_reply(cls, reply: Any) -> IpAddress:
        what = "guest-network-get-interfaces[].ip-addresses[]"
        _check(reply, dict, what)
        return cls(
            address=_check(reply.get("ip-address"), str, f"{what}.ip-address"),
            type=_check(reply.get("ip-address-type"), str, f"{what}.ip-address-type"),
            prefix=_check(reply.get("prefix"), int, f"{what}.prefix"),
        )


class InterfaceStatistics(NamedTuple):
    """GuestNetworkInterfaceStat (qemu-ga 2.11+): counters since the interface came up."""

    rx_bytes: int
    rx_packets: int
    rx_errs: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errs: int
    tx_dropped: int


class NetworkInterface(NamedTuple):
    """One of guest-network-get-interfaces. Through libvirt (virDomainGetGuestInfo) there are
    no statistics."""

    name: str
    hardware_address: str | None
    addresses: tuple[IpAddress, ...]
    statistics: InterfaceStatistics | None

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[NetworkInterface, ...]:
        return _list_of(reply, "guest-network-get-interfaces", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> NetworkInterface:
        what = "guest-network-get-interfaces[]"
        _check(reply, dict, what)
        addresses = _check(reply.get("ip-addresses", []), list, f"{what}.ip-addresses")
        statistics = reply.get("statistics")
        return cls(
            name=_check(reply.get("name"), str, f"{what}.name"),
            hardware_address=_optional(reply, "hardware-address", str, what),
            addresses=tuple(IpAddress.from_reply(address) for address in addresses),
            statistics=None
            if statistics is None
            else _counters(InterfaceStatistics, statistics, f"{what}.statistics", optional=False),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Route(NamedTuple):
    """One of guest-network-get-route (qemu-ga 9.1+, Linux: /proc/net/route and ipv6_route).
    IPv4 routes have gateway and mask; IPv6 routes nexthop, source and the prefix lengths
    (strings in the schema)."""

    iface: str
    destination: str
    metric: int
    version: int
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

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Route, ...]:
        return _list_of(reply, "guest-network-get-route", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> Route:
        what = "guest-network-get-route[]"
        _check(reply, dict, what)
        strings = ("gateway", "mask", "desprefixlen", "source", "srcprefixlen", "nexthop")
        return cls(
            iface=_check(reply.get("iface"), str, f"{what}.iface"),
            destination=_check(reply.get("destination"), str, f"{what}.destination"),
            metric=_check(reply.get("metric"), int, f"{what}.metric"),
            version=_check(reply.get("version"), int, f"{what}.version"),
            **{key: _optional(reply, key, str, what) for key in strings},
            **{
                key: _optional(reply, key, int, what)
                for key in ("flags", "refcnt", "use", "window", "mtu", "irtt")
            },
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class Vcpu(NamedTuple):
    """GuestLogicalProcessor. The agent lists them in no particular order: list_from_reply
    sorts by logical_id."""

    logical_id: int
    online: bool
    can_offline: bool | None

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[Vcpu, ...]:
        vcpus = _list_of(reply, "guest-get-vcpus", cls.from_reply)
        return tuple(sorted(vcpus, key=lambda vcpu: vcpu.logical_id))

    @classmethod
    def from_reply(cls, reply: Any) -> Vcpu:
        what = "guest-get-vcpus[]"
        _check(reply, dict, what)
        return cls(
            logical_id=_check(reply.get("logical-id"), int, f"{what}.logical-id"),
            online=_check(reply.get("online"), bool, f"{what}.online"),
            can_offline=_optional(reply, "can-offline", bool, what),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class MemoryBlock(NamedTuple):
    """GuestMemoryBlock (sorted by phys_index: the agent's order is unspecified)."""

    phys_index: int
    online: bool
    can_offline: bool | None

    @classmethod
    def from_reply(cls, reply: Any) -> MemoryBlock:
        what = "guest-get-memory-blocks[]"
        _check(reply, dict, what)
        return cls(
            phys_index=_check(reply.get("phys-index"), int, f"{what}.phys-index"),
            online=_check(reply.get("online"), bool, f"{what}.online"),
            can_offline=_optional(reply, "can-offline", bool, what),
        )


class Memory(NamedTuple):
    """guest-get-memory-blocks with guest-get-memory-block-info's block size (bytes)."""

    block_size: int
    blocks: tuple[MemoryBlock, ...]

    @classmethod
    def from_replies(cls, blocks: Any, info: Any) -> Memory:
        _check(info, dict, "guest-get-memory-block-info")
        size = _check(info.get("size"), int, "guest-get-memory-block-info.size")
        found = _list_of(blocks, "guest-get-memory-blocks", MemoryBlock.from_reply)
        return cls(size, tuple(sorted(found, key=lambda block: block.phys_index)))

    @property
    def online_bytes(self) -> int:
        return self.block_size * sum(block.online for block in self.blocks)

    def to_json(self) -> dict[str, Any]:
        return {**_json_of(self), "online_bytes": self.online_bytes}


class LoadAverage(NamedTuple):
    """guest-get-load (qemu-ga 10.0+): the run-queue averages over 1, 5 and 15 minutes."""

    load1m: float
    load5m: float
    load15m: float

    @classmethod
    def from_reply(cls, reply: Any) -> LoadAverage:
        _check(reply, dict, "guest-get-load")
        return cls(
            **{field: _number(reply.get(field), f"guest-get-load.{field}") for field in cls._fields}
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


class DiskStats(NamedTuple):
    """One of guest-get-diskstats (qemu-ga 7.1+, Linux)."""

    name: str
    major: int
    minor: int
    stats: DiskCounters

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[DiskStats, ...]:
        return _list_of(reply, "guest-get-diskstats", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> DiskStats:
        what = "guest-get-diskstats[]"
        _check(reply, dict, what)
        return cls(
            name=_check(reply.get("name"), str, f"{what}.name"),
            major=_check(reply.get("major"), int, f"{what}.major"),
            minor=_check(reply.get("minor"), int, f"{what}.minor"),
            stats=_counters(DiskCounters, reply.get("stats"), f"{what}.stats", optional=True),
        )

    def to_json(self) -> dict[str, Any]:
        return _json_of(self)


class CpuStats(NamedTuple):
    """One of guest-get-cpustats (qemu-ga 7.1+): times in milliseconds (schema). The union has
    only a "linux" member so far; another type keeps just its type."""

    type: str
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

    @classmethod
    def list_from_reply(cls, reply: Any) -> tuple[CpuStats, ...]:
        return _list_of(reply, "guest-get-cpustats", cls.from_reply)

    @classmethod
    def from_reply(cls, reply: Any) -> CpuStats:
        what = "guest-get-cpustats[]"
        _check(reply, dict, what)
        kind = _check(reply.get("type"), str, f"{what}.type")
        if kind != "linux":
            return cls(kind, *([None] * (len(cls._fields) - 1)))
        for key in ("cpu", "user", "nice", "system", "idle"):  # the rest are optional
            _check(reply.get(key), int, f"{what}.{key}")
        return cls(kind, **{key: _optional(reply, key, int, what) for key in cls._fields[1:]})

    def to_json(self) -> dict[str, Any]:
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

    @classmethod
    def from_reply(cls, user: str, reply: Any) -> AuthorizedKeys:
        what = "guest-ssh-get-authorized-keys"
        _check(reply, dict, what)
        keys = _check(reply.get("keys"), list, f"{what}.keys")
        return cls(user, tuple(_check(key, str, f"{what}.keys[]") for key in keys))

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
