"""Freeze a set of guests, run a host command while all of them are frozen, thaw them all
whatever happens. One guest is a set of one.

qemu-ga never thaws by itself, so this is built around one promise: nothing qgactl freezes
stays frozen. What covers which failure:
- qgactl's own errors, CMD failing or hanging (timeout_run), SIGINT/SIGTERM/SIGHUP: signals
  are only recorded while a guest may be frozen (signals.DeferredSignals: a handler that raised
  could cut a thaw short), and the thaws run in a ``finally``, each retrying on a fresh
  connection (watchdog.thaw_until_done).
- a freeze that fails half way, or fails on one guest of several: every guest is thawed and
  CMD does not run.
- qgactl killed (SIGKILL, a crash, the OOM killer): a guard watchdog per guest, armed before
  any freeze, thaws as soon as qgactl is gone (qgactl/watchdog.py).

No click, no printing: what happens is told to an Events object (commands/fs.py prints it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, Protocol

from qgactl import fanout, watchdog
from qgactl.errors import AgentCommandError, ExitCode, QgactlError
from qgactl.signals import DeferredSignals
from qgactl.tables import filesystems

if TYPE_CHECKING:
    from qgactl.agent import Agent

FREEZE_TIMEOUT = 30.0  # a freeze syncs every dirty page first: the default 5 s is too short
THAW_RETRY_SECONDS = 30.0  # qgactl's own thaw keeps trying this long before it gives up
KILL_GRACE = 2.0  # CMD's process group gets this long after SIGTERM before SIGKILL
RUN_TIMED_OUT = 124  # like timeout(1)


class AlreadyFrozen(QgactlError):
    exit_code = ExitCode.AGENT_ERROR


class Events(Protocol):
    def note(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def error(self, exc: QgactlError) -> None: ...


class Guest:
    """One guest's freeze and thaw: how to reach its agent, its watchdog and its state key."""

    def __init__(
        self,
        name: str,
        key: str,
        open_agent: Callable[[float], Agent],
        watchdog_target: watchdog.Target,
        timeout: float,
    ) -> None:
        self.name = name
        self.key = key  # the auto-thaw state key (watchdog.py)
        self._open = open_agent
        self.watchdog_target = watchdog_target
        self.timeout = timeout

    def open(self, timeout: float | None = None) -> Agent:
        return self._open(self.timeout if timeout is None else timeout)

    def open_thawed(self) -> Agent:
        """An agent for a thawed guest. The agent's own refusal of a second freeze says
        "disabled", so ask first and say it plainly."""
        agent = self.open()
        if agent.fsfreeze_status() == "frozen":
            agent.close()
            raise self.already_frozen()
        # The guest is thawed, so an armed auto-thaw belongs to an old freeze: left armed, it
        # would thaw the new one early.
        watchdog.cancel(self.key)
        return agent

    def freeze(self, agent: Agent, mountpoints: Sequence[str]) -> int:
        """Freeze; AlreadyFrozen if another client froze the guest since open_thawed()."""
        try:
            return agent.fsfreeze_freeze(mountpoints, timeout=self.timeout)
        except AgentCommandError as exc:
            agent.close()  # one client at a time on a socket: close before asking again
            if exc.is_disabled and self._frozen_now():
                raise self.already_frozen() from None
            raise
        finally:
            agent.close()

    def thaw(self, events: Events) -> int | None:
        """Thaw with retries, then cancel the auto-thaw; the count, or None (and an error
        told) if it never worked."""

        def retrying(exc: QgactlError) -> None:
            events.warn(f"{self.name}: thaw failed ({exc.message}); trying again")

        try:
            count = watchdog.thaw_until_done(
                self.open, give_up=THAW_RETRY_SECONDS, on_retry=retrying
            )
        except QgactlError as exc:
            exc.hint = f"THE GUEST MAY STILL BE FROZEN: qgactl fsfreeze {self.name} --thaw"
            events.error(exc)
            return None
        watchdog.cancel(self.key)
        return count

    def already_frozen(self) -> AlreadyFrozen:
        return AlreadyFrozen(
            f"{self.name}: the filesystems are already frozen",
            hint=f"thaw them first: qgactl fsfreeze {self.name} --thaw",
            domain=self.name,
        )

    def _frozen_now(self) -> bool:
        try:
            agent = self.open()
            try:
                return agent.fsfreeze_status() == "frozen"
            finally:
                agent.close()
        except QgactlError:
            return False


def run_frozen(
    guests: Sequence[Guest],
    mountpoints: Sequence[str],
    command: str,
    timeout_run: float | None,
    events: Events,
) -> int:
    """Freeze every guest at once, run CMD on the host once, thaw every guest; the exit status
    says what happened (fsfreeze --help). A guest frozen by someone else: AlreadyFrozen, after
    the others were thawed, and its own freeze left alone."""
    agents: list[Agent] = []
    try:
        for guest in guests:
            agents.append(guest.open_thawed())
    except QgactlError:
        for agent in agents:
            agent.close()
        raise
    # Armed before any freeze: from here on, even SIGKILL of qgactl can't leave one frozen.
    guards = {guest.name: _guard(guest) for guest in guests}
    started = time.monotonic()
    status: int = ExitCode.EXEC_FAILED
    with DeferredSignals() as signals:
        pairs = list(zip(guests, agents))
        frozen = fanout.run_all(
            pairs, lambda pair: pair[0].freeze(pair[1], mountpoints), len(pairs)
        )
        theirs = [o.target[0] for o in frozen if isinstance(o.error, AlreadyFrozen)]
        for guest in theirs:
            _stop(guards.pop(guest.name))  # someone else's freeze: its guard must not thaw it
        for outcome in frozen:
            if outcome.error is not None and not isinstance(outcome.error, AlreadyFrozen):
                events.error(outcome.error)  # CMD won't run
                events.warn(f"{outcome.target[0].name}: thawing in case the freeze got half way")
        ours = [guest for guest in guests if guest not in theirs]
        try:
            if all(o.ok for o in frozen) and not signals.received:
                counts = ", ".join(f"{filesystems(o.value)} of {o.target[0].name}" for o in frozen)
                events.note(f"froze {counts}; running: {command}")
                status = _run_command(command, timeout_run, signals)
        finally:
            thawed = fanout.run_all(ours, lambda guest: guest.thaw(events), len(ours) or 1)
    failed_thaw = [o.target for o in thawed if o.error is not None or o.value is None]
    for outcome in thawed:
        if outcome.target not in failed_thaw:
            _stop(guards.pop(outcome.target.name))  # a failed thaw's guard keeps trying
    if theirs:
        raise theirs[0].already_frozen()
    if failed_thaw:
        return ExitCode.EXEC_FAILED
    seconds = time.monotonic() - started
    counts = ", ".join(f"{filesystems(o.value)} of {o.target.name}" for o in thawed)
    events.note(f"thawed {counts} after {seconds:.1f} s")
    return 128 + signals.received if signals.received else status


def _guard(guest: Guest) -> subprocess.Popen[bytes]:
    return watchdog.start(guest.watchdog_target, seconds=None, guard=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait()


def _run_command(command: str, timeout_run: float | None, signals: DeferredSignals) -> int:
    """Run CMD in a process group of its own (so a hang or a signal can stop all of it)."""
    process = subprocess.Popen(["/bin/sh", "-c", command], preexec_fn=os.setpgrp)
    deadline = None if timeout_run is None else time.monotonic() + timeout_run
    try:
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return _wait_status(process.wait(timeout=0.1))
            if signals.received:
                _stop_group(process, signals.received)  # pass it on, as a shell would
                return 128 + signals.received
            if deadline is not None and time.monotonic() >= deadline:
                _stop_group(process, signal.SIGTERM)
                return RUN_TIMED_OUT
    finally:
        if process.poll() is None:  # an error of our own: don't leave CMD running
            _stop_group(process, signal.SIGKILL)


def _stop_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal CMD's whole process group; SIGKILL what is left after KILL_GRACE."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait_status(returncode: int) -> int:
    """A shell-style status: 128+N when a signal N ended CMD (Popen says -N)."""
    return 128 - returncode if returncode < 0 else returncode
