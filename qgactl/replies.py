"""Checking the shape of an agent's reply (the guest is untrusted), and the models of the exec
and file paths (guest-exec-status, guest-file-read).

Apart from models.py because exec, cp and cat need only these two: creating models.py's ~30
NamedTuple classes costs ~5 ms of start-up that a short ``qgactl exec`` does not need.
models.py builds every other model on the checks here and re-exports these two.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NamedTuple

from qgactl.errors import ProtocolError


def check(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """Return ``value`` if it has the type the schema promises, else raise ProtocolError."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ProtocolError(
            f"unexpected reply from the agent: {what} is {type(value).__name__}",
            hint="the guest agent is misbehaving or is not qemu-ga",
        )
    return value


def optional(reply: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """An optional member ("*name" in the schema): None when absent, else checked."""
    value = reply.get(key)
    return None if value is None else check(value, kind, f"{what}.{key}")


def base64_member(reply: dict[str, Any], key: str, what: str) -> bytes:
    """An optional base64 member ("out-data", "buf-b64") decoded; a bad encoding is the guest's
    fault, not ours."""
    text = optional(reply, key, str, what)
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
        check(reply, dict, what)
        return cls(
            exited=check(reply.get("exited"), bool, f"{what}.exited"),
            exit_code=optional(reply, "exitcode", int, what),
            signal=optional(reply, "signal", int, what),
            out_data=base64_member(reply, "out-data", what),
            err_data=base64_member(reply, "err-data", what),
            out_truncated=bool(optional(reply, "out-truncated", bool, what)),
            err_truncated=bool(optional(reply, "err-truncated", bool, what)),
        )


class FileChunk(NamedTuple):
    """guest-file-read: the bytes read and whether the end of the file was reached."""

    data: bytes
    eof: bool

    @classmethod
    def from_reply(cls, reply: Any, asked: int) -> FileChunk:
        what = "guest-file-read"
        check(reply, dict, what)
        data = base64_member(reply, "buf-b64", what)
        count = check(reply.get("count"), int, f"{what}.count")
        if count != len(data) or count > asked:
            raise ProtocolError(
                f"unexpected reply from the agent: {what} says {count} bytes, sent {len(data)} "
                f"(asked for at most {asked})"
            )
        return cls(data, check(reply.get("eof"), bool, f"{what}.eof"))
