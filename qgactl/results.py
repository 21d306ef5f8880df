"""What the Python API's calls return, beside the models: ``Completed`` (``Guest.exec``), the
``CommandFailed`` error of ``exec(check=True)``, and ``Result`` (``Fleet.map``).

Apart from qgactl/api.py so that its import stays cheap (a typed NamedTuple costs a few
hundred microseconds to build; `qgactl ping` goes through the API and never needs these).
Public as ``qgactl.Completed``, ``qgactl.CommandFailed`` and ``qgactl.Result``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from qgactl.api import Guest


class Completed(NamedTuple):
    """How a guest command ended (``Guest.exec``).

    ``status`` is shell-style: the exit code, 128+N for a signal N, 124 after ``timeout``.
    ``stdout`` and ``stderr`` hold the output when no callback or sink took it (else b"").
    """

    status: int
    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    pid: int
    stdout_truncated: bool = False  # a Windows guest's agent keeps 16 MiB of each stream
    stderr_truncated: bool = False


class CommandFailed(Exception):
    """``Guest.exec(check=True)``: the command ran and ended with a non-zero status. Not a
    QgactlError: qgactl did its job; the guest's command failed."""

    def __init__(self, argv: Sequence[str], completed: Completed) -> None:
        super().__init__(f"{' '.join(argv)}: exit status {completed.status}")
        self.argv = list(argv)
        self.completed = completed


class Result(NamedTuple):
    """One guest's outcome in ``Fleet.map``: its value, or the QgactlError it raised."""

    guest: Guest
    value: Any = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
