"""Shell completion callbacks: domains from libvirt, with a short deadline and silent fallback.

Completion runs on every <TAB>: it must never print an error or hang. Each lookup runs in a
daemon thread with a deadline; whatever fails or is late completes to nothing.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from click.shell_completion import CompletionItem

LOOKUP_DEADLINE = 1.0

T = TypeVar("T")


def _within_deadline(lookup: Callable[[], list[T]], seconds: float = LOOKUP_DEADLINE) -> list[T]:
    found: list[T] = []

    def run() -> None:
        try:
            found.extend(lookup())
        except Exception:  # completion must stay silent whatever libvirt does
            pass

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    return list(found) if not worker.is_alive() else []


def _connect_uri(ctx: Any) -> str | None:
    root = ctx.find_root()
    return root.params.get("connect") if root.params else None


def complete_running_domains(ctx: Any, param: Any, incomplete: str) -> list[CompletionItem]:
    """Names of running domains (commands that talk to the agent need a running one)."""
    if ctx.find_root().params.get("socket"):
        return []

    def lookup() -> list[str]:
        import libvirt

        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        from qgactl.discover import Libvirt

        conn = Libvirt(_connect_uri(ctx)).conn
        return [d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]

    names = _within_deadline(lookup)
    return [CompletionItem(name) for name in sorted(names) if name.startswith(incomplete)]
