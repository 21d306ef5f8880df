"""Run one job per target, concurrently, and keep every target's result or error.

A failed target is an Outcome with its error: it never stops the others, unless the caller
gives ``max_failures``: once that many have failed, targets not yet started are not started
(an Outcome with a NotStarted error). A bug (any exception that is not a QgactlError) in one
job is raised again in the caller's thread once all threads are done. Plain threads sharing
one iterator (concurrent.futures imports logging: ~5 ms of start-up, PROTOCOL.md's fleet
measurements); one target runs in the caller's thread.

No printing, no click: commands render the outcomes (commands/fleet.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple, TypeVar

from qgactl.errors import QgactlError

T = TypeVar("T")


class NotStarted(QgactlError):
    """A target left out: enough others had failed (``max_failures``)."""


class Outcome(NamedTuple):
    target: Any  # a targeting.Target, or whatever run_all was given
    value: Any = None
    error: QgactlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_all(
    targets: Sequence[T],
    job: Callable[[T], Any],
    jobs: int,
    *,
    max_failures: int | None = None,
    failed: Callable[[Outcome], bool] = lambda outcome: not outcome.ok,
) -> list[Outcome]:
    """``job(target)`` for every target, at most ``jobs`` at once; outcomes in target order.
    With ``max_failures``, no target starts once that many outcomes were ``failed``."""
    outcomes: list[Outcome | None] = [None] * len(targets)
    crashes: list[BaseException] = []
    pending = enumerate(targets)  # next() on it is atomic: each target is taken once
    failures = [0]
    lock = threading.Lock()

    def worker() -> None:
        for index, target in pending:
            if max_failures is not None and failures[0] >= max_failures:
                error = NotStarted(f"{max_failures} failed before it: not started")
                outcomes[index] = Outcome(target, error=error)
                continue
            try:
                outcome = outcomes[index] = _one(target, job)
            except BaseException as exc:  # a bug: raised again below
                crashes.append(exc)
                continue
            if failed(outcome):
                with lock:
                    failures[0] += 1

    count = min(jobs, len(targets))
    if count <= 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if crashes:
        raise crashes[0]
    return [outcome for outcome in outcomes if outcome is not None]


def _one(target: T, job: Callable[[T], Any]) -> Outcome:
    failure = getattr(target, "failure", None)  # a targeting.Target that could not be named
    if failure is not None:
        return Outcome(target, error=failure)
    try:
        return Outcome(target, job(target))
    except QgactlError as exc:
        return Outcome(target, error=exc)
