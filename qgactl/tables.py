"""One table builder per model, for every command: what a person sees of a result.

Each builder takes the same model that ``-o json`` prints and returns a rich renderable made
with rows_table or fields_table (which import rich, only when a table is drawn,
and escape every cell). Commands pass them to Terminal.result as ``lambda: tables.X(model)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qgactl.render import escape_control, fields_table, rows_table

if TYPE_CHECKING:
    from qgactl.discover import DomainInfo
    from qgactl.models import (
        AgentInfo,
        AuthorizedKeys,
        Disk,
        DiskAddress,
        Filesystem,
        OsInfo,
        PingResult,
        PowerResult,
        TrimResult,
    )


def ping_table(results: Sequence[PingResult]) -> Any:
    return rows_table(
        ["TARGET", "STATUS", "TIME", "TRANSPORT", "ERROR"],
        [
            (
                result.target,
                "ok" if result.ok else "failed",
                f"{result.milliseconds:.1f} ms" if result.milliseconds is not None else None,
                result.transport,
                result.failure.message if result.failure else None,
            )
            for result in results
        ],
    )


def info_table(info: AgentInfo) -> Any:
    return rows_table(
        ["COMMAND", "ENABLED", "REPLIES ON SUCCESS"],
        [(c.name, c.enabled, c.success_response) for c in info.commands],
        title=f"qemu-ga {escape_control(info.version)}: {len(info.commands)} commands, "
        f"{len(info.disabled)} disabled",
    )


def osinfo_table(info: OsInfo) -> Any:
    return fields_table(
        [
            ("Name", info.pretty_name or info.name),
            ("Version", info.version),
            ("ID", info.id),
            ("Variant", info.variant),
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


def _device(fs: Filesystem) -> str:
    """The device node when the agent knows it (disk[].dev, qemu-ga 3.1+), else its name."""
    devs = [disk.dev for disk in fs.disks if disk.dev]
    return ", ".join(devs) if devs else fs.name


def _disk_text(address: DiskAddress) -> str:
    """fsinfo's DISK: the bus, and the serial that tells the host which disk it is."""
    text = _bus_text(address)
    return f"{text} serial {address.serial}" if address.serial else text


def _bus_text(address: DiskAddress) -> str:
    pci = address.pci_controller
    if pci and pci.slot >= 0:  # -1 everywhere means the agent couldn't tell
        return f"{address.bus_type} {pci.domain:04x}:{pci.bus:02x}:{pci.slot:02x}.{pci.function}"
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
        title=f"{escape_control(found.user)}: {len(found.keys)} authorized key"
        + ("" if len(found.keys) == 1 else "s"),
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
