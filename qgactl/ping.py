"""What `qgactl ping` reports for one target.

Not in models.py: ping is the command whose start-up matters most (a monitor runs it over and
over), and creating models.py's ~30 classes costs ~5 ms that a ping does not need.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from qgactl.errors import QgactlError


class PingResult(NamedTuple):
    """One target of ``qgactl ping``: answered or not, how fast, over which transport."""

    target: str
    transport: str | None
    milliseconds: float | None
    host: str | None = None  # the -c URI (None: libvirt's default, or a socket)
    failure: QgactlError | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "host": self.host,
            "ok": self.ok,
            "transport": self.transport,
            "milliseconds": self.milliseconds,
            "error": self.failure.message if self.failure else None,
            "exit_code": int(self.failure.exit_code) if self.failure else 0,
        }
