"""One table builder per model, for every command: what a person sees of a result.

Each builder takes the same model that ``-o json`` prints and returns a rich renderable made
with rows_table or fields_table (which import rich, only when a table is drawn,
and escape every cell). Commands pass them to Terminal.result as ``lambda: tables.X(model)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from qgactl.models import utc_text
from qgactl.render import escape_control, fields_table, rows_table, sections

if TYPE_CHECKING:
    from qgactl.discover import DomainInfo
    from qgactl.models import (
        AgentInfo,
        AuthorizedKeys,
        CpuStats,
        Disk,
        DiskAddress,
        DiskStats,
        Filesystem,
        GuestInfo,
        GuestTime,
        HostName,
        LoadAverage,
        Memory,
        NetworkInterface,
        OsInfo,
        PowerResult,
        Route,
        Timezone,
        TrimResult,
        User,
        Vcpu,
    )
    from qgactl.ping import PingResult


def ping_table(results: Sequence[PingResult], *, hosts: bool = False) -> Any:
    columns = ["TARGET", *(["HOST"] if hosts else []), "STATUS", "TIME", "TRANSPORT", "ERROR"]
    return rows_table(
        columns,
        [
            (
                result.target,
                *([result.host] if hosts else []),
                "ok" if result.ok else "failed",
                f"{result.milliseconds:.1f} ms" if result.milliseconds is not None else None,
                result.transport,
                result.failure.message if result.failure else None,
            )
            for result in results
        ],
    )


def info_table(info: AgentInfo) -> Any:
    version = f"qemu-ga {escape_control(info.version or '(version not given)')}"
    listed = info.commands
    return rows_table(
        ["COMMAND", "ENABLED", "REPLIES ON SUCCESS"],
        [(c.name, c.enabled, c.success_response) for c in listed or ()],
        title=f"{version}: no list of commands"
        if listed is None
        else f"{version}: {len(listed)} commands, {len(info.disabled)} disabled",
    )


def osinfo_table(info: OsInfo) -> Any:
    return fields_table(
        [
            ("Name", info.pretty_name or info.name),
            ("Version", info.version),
            ("ID", info.id),
            ("Variant", info.variant),
            ("Variant ID", info.variant_id),
            ("Kernel", info.kernel_release),
            ("Kernel build", info.kernel_version),
            ("Machine", info.machine),
        ]
    )


def domains_table(domains: Sequence[DomainInfo], transports: Sequence[str]) -> Any:
    return rows_table(
        ["ID", "NAME", "STATE", "AGENT", "TRANSPORT"],
        [
            (d.id, d.name, d.state, d.agent_state, transport)
            for d, transport in zip(domains, transports)
        ],
    )


# -- filesystems -------------------------------------------------------------------------------


def freeze_table(data: dict[str, Any]) -> Any:
    auto = data.get("auto_thaw")
    pairs: list[tuple[str, Any]] = [("Target", data["target"]), ("Status", data["status"])]
    for key, label in (("frozen", "Frozen"), ("thawed", "Thawed")):
        if key in data:
            pairs.append((label, filesystems(data[key])))
    if auto:
        pairs.append(("Auto-thaw", f"in {auto['seconds_left']:.0f} s (watchdog pid {auto['pid']})"))
    if data.get("auto_thaw_cancelled"):
        pairs.append(("Auto-thaw", f"cancelled (watchdog pid {data['auto_thaw_cancelled']})"))
    return fields_table(pairs)


def filesystems(count: int) -> str:
    """3 -> "3 filesystems", for tables and fsfreeze's notes."""
    return f"{count} filesystem" + ("" if count == 1 else "s")


def trim_table(results: Sequence[TrimResult]) -> Any:
    return rows_table(
        ["PATH", "TRIMMED", "MINIMUM", "ERROR"],
        [(r.path, human_bytes(r.trimmed), human_bytes(r.minimum), r.error) for r in results],
    )


def fsinfo_table(filesystems: Sequence[Filesystem]) -> Any:
    return rows_table(
        ["MOUNTPOINT", "TYPE", "DEVICE", "USED", "TOTAL", "USE%", "DISK"],
        [
            (
                fs.mountpoint,
                fs.type,
                _device(fs),
                human_bytes(fs.used_bytes),
                human_bytes(fs.total_bytes),
                _percent(fs.used_bytes, fs.total_bytes),
                ", ".join(_disk_text(disk) for disk in fs.disks) or None,
            )
            for fs in filesystems
        ],
    )


def _device(fs: Filesystem) -> str | None:
    """The device node when the agent knows it (disk[].dev, qemu-ga 3.1+), else its name."""
    devs = [disk.dev for disk in fs.disks if disk.dev]
    return ", ".join(devs) if devs else fs.name


def _disk_text(address: DiskAddress) -> str:
    """fsinfo's DISK: the bus, and the serial that tells the host which disk it is."""
    text = _bus_text(address) or ""
    return f"{text} serial {address.serial}".strip() if address.serial else text


def _bus_text(address: DiskAddress) -> str | None:
    pci = address.pci_controller
    numbers = (pci.domain, pci.bus, pci.slot, pci.function) if pci else ()
    # -1 everywhere means the agent couldn't tell; None, that it left them out
    if numbers and all(number is not None and number >= 0 for number in numbers):
        domain, bus, slot, function = numbers
        return f"{_known(address.bus_type)} {domain:04x}:{bus:02x}:{slot:02x}.{function}"
    return address.bus_type


def _percent(used: int | None, total: int | None) -> str | None:
    if used is None or not total:
        return None
    return f"{100 * used / total:.0f}%"


def disks_table(found: Sequence[Disk]) -> Any:
    return rows_table(
        ["NAME", "PARTITION", "BUS", "SERIAL", "ALIAS", "DEPENDS ON"],
        [
            (
                disk.name,
                disk.partition,
                _bus_text(disk.address) if disk.address else None,
                disk.address.serial if disk.address else None,
                disk.alias,
                ", ".join(disk.dependencies) or None,
            )
            for disk in found
        ],
    )


def human_bytes(count: int | None) -> str | None:
    """1536 -> "1.5 KiB"; binary units, as df -h uses."""
    if count is None:
        return None
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- the guest's state: hostname, users, timezone, time, net, vcpus, memory, load, stats ------


def hostname_table(name: HostName) -> Any:
    return fields_table([("Hostname", name.host_name)])


def users_table(users: Sequence[User]) -> Any:
    return rows_table(
        ["USER", "DOMAIN", "LOGGED IN (UTC)"],
        [(u.user, u.domain, _utc_seconds(u.login_time)) for u in users],
        title=f"{plural(len(users), 'user')} logged in",
    )


def plural(count: int, noun: str) -> str:
    """(1, "vCPU") -> "1 vCPU", (2, "vCPU") -> "2 vCPUs"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _utc_seconds(seconds: float | None) -> str | None:
    """1796113366.0 -> "2026-12-01 08:22:46" (UTC, whole seconds)."""
    return None if seconds is None else utc_text(seconds * 1e9)[:19].replace("T", " ")


def timezone_table(zone: Timezone) -> Any:
    return fields_table([("Zone", zone.zone), ("Offset", utc_offset(zone.offset))])


def utc_offset(seconds: int | None) -> str | None:
    """19800 -> "UTC+05:30", -12600 -> "UTC-03:30" (seconds left out unless there are any)."""
    if seconds is None:
        return None
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, rest = divmod(rest, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}" + (f":{rest:02d}" if rest else "")


def time_table(clock: GuestTime) -> Any:
    return fields_table(
        [
            ("Guest time", utc_text(clock.nanoseconds)),
            ("Seconds since the epoch", f"{clock.nanoseconds / 1e9:.6f}"),
            ("Compared with the host", drift_text(clock.drift_seconds)),
        ]
    )


def drift_text(seconds: float) -> str:
    """-0.755 -> "behind the host by 755 ms"; 103501855.3 -> "ahead of the host by 1197 days
    22 h" (the JSON keeps drift_seconds)."""
    if round(abs(seconds) * 1000) == 0:
        return "in step with the host (within 1 ms)"
    side = "ahead of" if seconds > 0 else "behind"
    return f"{side} the host by {duration_text(abs(seconds))}"


def duration_text(seconds: float) -> str:
    """A positive span in the unit a person reads: "755 ms", "12.3 s", "4 min 5 s",
    "3 h 20 min", "1198 days 2 h"."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for unit, size, smaller, small_size in (
        ("days", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= size:
            count, rest = divmod(whole, size)
            name = "day" if unit == "days" and count == 1 else unit
            rest //= small_size
            return f"{count} {name}" + (f" {rest} {smaller}" if rest else "")
    raise AssertionError("unreachable")


def net_table(interfaces: Sequence[NetworkInterface]) -> Any:
    """Bytes received and sent; errors and drops are in the JSON (and none through libvirt)."""
    return rows_table(
        ["INTERFACE", "MAC", "ADDRESSES", "RX", "TX"],
        [
            (
                i.name,
                i.hardware_address,
                tuple(_address_text(a.address, a.prefix) for a in i.addresses),
                human_bytes(i.statistics.rx_bytes) if i.statistics else None,
                human_bytes(i.statistics.tx_bytes) if i.statistics else None,
            )
            for i in interfaces
        ],
    )


def _address_text(address: str | None, prefix: int | None) -> str:
    """An address with its prefix length ("fe80::1/64"); what the agent left out shows "?"."""
    return _known(address) + ("" if prefix is None else f"/{prefix}")


def _known(value: object) -> str:
    """A part of a composed cell: "?" where the agent left it out."""
    return "?" if value is None else str(value)


def routes_table(routes: Sequence[Route]) -> Any:
    return rows_table(
        ["DESTINATION", "VIA", "INTERFACE", "METRIC", "MTU"],
        [
            (_destination(r), r.gateway if r.version == 4 else r.nexthop, r.iface, r.metric, r.mtu)
            for r in routes
        ],
    )


def net_routes_table(interfaces: Sequence[NetworkInterface], routes: Sequence[Route]) -> Any:
    return sections([("Interfaces", net_table(interfaces)), ("Routes", routes_table(routes))])


def _destination(route: Route) -> str | None:
    """10.0.2.0/255.255.255.0 for IPv4 (the agent gives a mask), fe80::/64 for IPv6."""
    suffix = route.mask if route.version == 4 else route.desprefixlen
    return f"{_known(route.destination)}/{suffix}" if suffix else route.destination


def vcpus_table(vcpus: Sequence[Vcpu]) -> Any:
    online = sum(vcpu.online is True for vcpu in vcpus)
    return rows_table(
        ["CPU", "ONLINE", "CAN GO OFFLINE"],
        [(v.logical_id, v.online, v.can_offline) for v in vcpus],
        title=f"{plural(len(vcpus), 'vCPU')}, {online} online",
    )


def memory_table(memory: Memory) -> Any:
    """Runs of consecutive blocks in the same state, one row each (a 24 GiB guest has 192)."""
    runs: list[list[Any]] = []  # [first, last, count, online, can_offline]
    for block in memory.blocks:
        last = runs[-1] if runs else None
        index = block.phys_index
        state = [block.online, block.can_offline]
        if last and index is not None and last[1] == index - 1 and last[3:] == state:
            last[1:3] = [index, last[2] + 1]
        else:
            runs.append([index, index, 1, *state])  # a block without an index is a run alone
    online = sum(block.online is True for block in memory.blocks)
    size = memory.block_size
    return rows_table(
        ["BLOCKS", "SIZE", "ONLINE", "CAN GO OFFLINE"],
        [
            (
                first if first == last else f"{first}-{last}",
                None if size is None else human_bytes(count * size),
                is_online,
                can_offline,
            )
            for first, last, count, is_online, can_offline in runs
        ],
        title=f"{plural(len(memory.blocks), 'memory block')} of {human_bytes(memory.block_size)}, "
        f"{online} online ({human_bytes(memory.online_bytes)})",
    )


def load_table(load: LoadAverage) -> Any:
    averages = (("1 min", load.load1m), ("5 min", load.load5m), ("15 min", load.load15m))
    return fields_table(
        [(label, None if value is None else f"{value:.2f}") for label, value in averages]
    )


SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the disk's own sector size


def diskstats_table(disks: Sequence[DiskStats]) -> Any:
    def sectors(count: int | None) -> str | None:
        return None if count is None else human_bytes(count * SECTOR)

    return rows_table(
        ["DISK", "MAJ:MIN", "READS", "READ", "WRITES", "WRITTEN", "IN FLIGHT", "BUSY"],
        [
            (
                d.name,
                f"{_known(d.major)}:{_known(d.minor)}",
                d.stats.read_ios,
                sectors(d.stats.read_sectors),
                d.stats.write_ios,
                sectors(d.stats.write_sectors),
                d.stats.ios_pgr,
                None if d.stats.total_ticks is None else f"{d.stats.total_ticks} ms",
            )
            for d in disks
        ],
    )


def cpustats_table(cpus: Sequence[CpuStats]) -> Any:
    columns = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return rows_table(
        ["CPU", *(column.upper() for column in columns)],
        [(c.cpu if c.cpu is not None else c.type, *(getattr(c, k) for k in columns)) for c in cpus],
        title="time per CPU in milliseconds",
    )


_GUESTINFO_SECTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "os": ("Operating system", osinfo_table),
    "hostname": ("Hostname", hostname_table),
    "users": ("Users", users_table),
    "timezone": ("Time zone", timezone_table),
    "fs": ("Filesystems", fsinfo_table),
    "disks": ("Disks", disks_table),
    "net": ("Network", net_table),
    "load": ("Load", load_table),
    "vcpus": ("vCPUs", vcpus_table),
}


def guestinfo_table(info: GuestInfo) -> Any:
    """One section per part that is there, in guestinfo.PARTS' order."""
    return sections(
        [
            (_GUESTINFO_SECTIONS[name][0], _GUESTINFO_SECTIONS[name][1](part))
            for name, part in info._asdict().items()
            if part is not None
        ]
    )


# -- doctor ------------------------------------------------------------------------------------


def doctor_table(target: str, checks: Sequence[Any]) -> Any:
    return rows_table(
        ["CHECK", "STATUS", "DETAIL", "FIX"],
        [(c.check, c.status, c.detail, c.fix) for c in checks],
        title=f"qgactl doctor {target}",
    )


# -- control and accounts ----------------------------------------------------------------------


def power_table(result: PowerResult) -> Any:
    pairs: list[tuple[str, Any]] = [("Target", result.target), ("Requested", result.action)]
    if result.waited:
        pairs.append(("Outcome", f"{result.outcome} after {result.seconds:.1f} s"))
    if result.wake:
        pairs.append(("Wake", result.wake))
    return fields_table(pairs)


def ssh_keys_table(found: AuthorizedKeys) -> Any:
    return rows_table(
        ["TYPE", "KEY", "COMMENT"],
        [_key_columns(key) for key in found.keys],
        title=f"{escape_control(found.user)}: {plural(len(found.keys), 'authorized key')}",
    )


def _key_columns(line: str) -> tuple[str, str, str | None]:
    """An authorized_keys line as type, a shortened key and the comment (options kept in front
    of the type); a line that doesn't parse is shown whole."""
    from qgactl.pubkeys import KEY_TYPES

    words = line.split()
    for index, word in enumerate(words[:-1]):
        if word in KEY_TYPES:
            kind = " ".join(words[: index + 1])
            blob = words[index + 1]
            short = blob if len(blob) <= 24 else f"{blob[:12]}...{blob[-8:]}"
            return kind, short, " ".join(words[index + 2 :]) or None
    return "?", line, None
