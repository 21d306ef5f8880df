"""SIGINT, SIGTERM and SIGHUP recorded instead of raised, for work that must finish cleanly.

A handler that raised could cut short a thaw, or the kill of a guest process, half way; with a
recording handler blocking calls simply resume (PEP 475) and the code checks ``received`` at
safe points, then exits 128+N as a shell would.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from qgactl.errors import QgactlError

INTERRUPTING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DeferredSignals:
    """Record the first of SIGINT, SIGTERM and SIGHUP while the ``with`` block runs; one
    that qgactl was started with ignored (nohup ignores SIGHUP) is left ignored."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> DeferredSignals:
        for signum in INTERRUPTING:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue  # `nohup qgactl ...`, a background job: what is ignored stays ignored
            self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum


class Interrupted(QgactlError):
    """A signal stopped qgactl: exit 128+N, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum  # type: ignore[assignment]
