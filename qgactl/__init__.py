"""qgactl: the QEMU guest agent, from the host: a command-line tool and a Python API.

    import qgactl

    with qgactl.connect("vm1") as guest:          # or connect(socket="/run/qga.sock")
        print(guest.hostname())

What is public is ``__all__`` (docs/api.md documents it); every other module may change. The
names are loaded on first use (module ``__getattr__``), so that ``import qgactl`` costs nothing:
the CLI imports this package too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from qgactl.api import (
        Fleet,
        Guest,
        Lane,
        add_channel,
        connect,
        doctor,
        remove_channel,
        targets,
    )
    from qgactl.errors import (
        AgentCommandError,
        AgentTimeout,
        AgentUnavailable,
        ExitCode,
        InvalidUsage,
        LaneLost,
        LaneRefused,
        LibvirtFailure,
        NotFound,
        ProtocolError,
        QgactlError,
        XmlPatchRefused,
    )
    from qgactl.results import CommandFailed, Completed, Result

__all__ = [
    "AgentCommandError",
    "AgentTimeout",
    "AgentUnavailable",
    "CommandFailed",
    "Completed",
    "ExitCode",
    "Fleet",
    "Guest",
    "InvalidUsage",
    "Lane",
    "LaneLost",
    "LaneRefused",
    "LibvirtFailure",
    "NotFound",
    "ProtocolError",
    "QgactlError",
    "Result",
    "XmlPatchRefused",
    "__version__",
    "add_channel",
    "connect",
    "doctor",
    "remove_channel",
    "targets",
]
# Where each name of __all__ lives; the rest of it is the error tree (qgactl.errors).
_API = {"Fleet", "Guest", "Lane", "add_channel", "connect", "doctor", "remove_channel", "targets"}
_RESULTS = {"CommandFailed", "Completed", "Result"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'qgactl' has no attribute {name!r}")
    import importlib

    where = "api" if name in _API else "results" if name in _RESULTS else "errors"
    module = importlib.import_module(f"qgactl.{where}")
    value = getattr(module, name)
    globals()[name] = value  # once: the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
