"""OpenSSH public keys from a host file, checked before they go into a guest's authorized_keys.

``parse_public_keys(text)`` returns the key lines of a ``.pub`` or ``authorized_keys`` file
(blank lines and ``#`` comments dropped), each exactly as written: guest-ssh-remove-authorized-
keys removes a key only when its whole line matches. A line is a key when it is
``[options] TYPE BASE64 [comment]`` (sshd(8), AUTHORIZED_KEYS FILE FORMAT) and the base64 blob
decodes to a key of that same TYPE. qemu-ga itself only refuses empty, ``#`` and multi-line keys.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import struct

from qgactl.errors import InvalidUsage

MAX_KEY_FILE = 1024 * 1024  # an RSA-16384 key is ~2.8 KB of base64: room for hundreds

# sshd(8) key types, the certificate variants included.
_BASE_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)  # fmt: skip
KEY_TYPES = frozenset(
    [*_BASE_TYPES, *(t.replace("@openssh.com", "") + "-cert-v01@openssh.com" for t in _BASE_TYPES)]
)


def parse_public_keys(text: str, source: str) -> list[str]:
    """The keys in ``text`` (from ``source``, for messages); InvalidUsage for anything else."""
    keys = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.isprintable() or not _is_key(line):
            raise InvalidUsage(
                f"{source}, line {number}: not an OpenSSH public key",
                hint="give public keys (id_ed25519.pub, authorized_keys lines), one a line",
            )
        keys.append(line)
    if not keys:
        raise InvalidUsage(f"{source}: no public key in it", hint="e.g. ~/.ssh/id_ed25519.pub")
    return keys


def _is_key(line: str) -> bool:
    """TYPE followed by a blob of that TYPE, anywhere after the options (which may hold
    quoted spaces, so the words before TYPE are not parsed)."""
    words = line.split()
    return any(
        kind in KEY_TYPES and _blob_type(blob) == kind for kind, blob in zip(words, words[1:])
    )


def _blob_type(blob: str) -> str | None:
    """The key type a key blob names first (RFC 4253 6.6: string type, then the key)."""
    try:
        data = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", data[:4])
        return data[4 : 4 + length].decode("ascii") if 4 + length <= len(data) else None
    except (binascii.Error, ValueError, struct.error, UnicodeDecodeError):
        return None
