"""OpenSSH public-key lines for tests: syntactically real (the blob names its type), random."""

from __future__ import annotations

import base64
import os
import struct


def public_key(
    kind: str = "ssh-ed25519", comment: str = "me@host", named: str | None = None
) -> str:
    """A key line whose blob names ``named`` (default: ``kind``) first, as RFC 4253 6.6 has it."""
    name = (named or kind).encode()
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + os.urandom(32)
    return f"{kind} {base64.b64encode(blob).decode()} {comment}".strip()
