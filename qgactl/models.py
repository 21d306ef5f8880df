"""Typed results built from the agent's replies.

Each model is a frozen dataclass with ``from_reply`` (checks the shape of the guest's reply and
raises ProtocolError when it is wrong: the guest is untrusted) and ``to_json`` (what ``-o json``
prints). Tables are drawn from the same models in render.py. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qgactl.errors import ProtocolError, QgactlError


def _check(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """Return ``value`` if it has the type the schema promises, else raise ProtocolError."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            f"unexpected reply from the agent: {what} is {type(value).__name__}",
            hint="the guest agent is misbehaving or is not qemu-ga",
        )
    return value


def _optional_str(reply: dict[str, Any], key: str, what: str) -> str | None:
    value = reply.get(key)
    return None if value is None else _check(value, str, f"{what}.{key}")


@dataclass(frozen=True)
class CommandInfo:
    name: str
    enabled: bool
    success_response: bool


@dataclass(frozen=True)
class AgentInfo:
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
        return asdict(self) | {"commands": [asdict(command) for command in self.commands]}


@dataclass(frozen=True)
class OsInfo:
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
                field: _optional_str(reply, field.replace("_", "-"), "guest-get-osinfo")
                for field in cls.__dataclass_fields__
            }
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PingResult:
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
