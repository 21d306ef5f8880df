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

from qgactl.errors import ProtocolError, QgactlError


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


class PingResult(NamedTuple):
    """One target of ``qgactl ping``: answered or not, how fast, over which transport."""

    target: str
    transport: str | None
    milliseconds: float | None
    failure: QgactlError | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "transport": self.transport,
            "milliseconds": self.milliseconds,
            "error": self.failure.message if self.failure else None,
            "exit_code": int(self.failure.exit_code) if self.failure else 0,
        }


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
    ccw-address is not kept)."""

    bus_type: str
    bus: int
    target: int
    unit: int
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
        _check(reply, list, "guest-get-fsinfo")
        return tuple(cls.from_reply(entry) for entry in reply)

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
        _check(reply, list, "guest-get-disks")
        return tuple(cls.from_reply(entry) for entry in reply)

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
