"""Filesystem commands: fsfreeze (status, freeze, thaw, --run, --auto-thaw), fstrim, fsinfo, disks.

A frozen guest blocks every writer, and qemu-ga never thaws by itself, so fsfreeze is built
around one promise: nothing qgactl freezes stays frozen. What covers which failure:

- qgactl's own errors, CMD failing or hanging (--timeout-run), SIGINT/SIGTERM/SIGHUP: signals
  are only recorded while the guest may be frozen (a handler that raised could cut a thaw
  short), and the thaw runs in a ``finally`` and retries on a fresh connection.
- a freeze that fails half way (timeout, lost connection): thaw anyway.
- qgactl killed (SIGKILL, a crash, the host's OOM killer) under --run: a guard watchdog
  (qgactl/watchdog.py), armed before the freeze, thaws as soon as qgactl is gone.
- a script that dies between --freeze and --thaw: --auto-thaw's watchdog thaws at its deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from qgactl import completion, tables, watchdog
from qgactl.app import App, domain_argument, pass_app
from qgactl.commands import fleet
from qgactl.commands.fleet import targets_argument
from qgactl.errors import AgentCommandError, ExitCode, InvalidUsage, QgactlError
from qgactl.signals import DeferredSignals

if TYPE_CHECKING:
    from qgactl.agent import Agent

FREEZE_TIMEOUT = 30.0  # a freeze syncs every dirty page first: the default 5 s is too short
THAW_RETRY_SECONDS = 30.0  # qgactl's own thaw keeps trying this long before it gives up
KILL_GRACE = 2.0  # CMD's process group gets this long after SIGTERM before SIGKILL
RUN_TIMED_OUT = 124  # like timeout(1)


class AlreadyFrozen(QgactlError):
    exit_code = ExitCode.AGENT_ERROR


# -- fsfreeze ---------------------------------------------------------------------------------


@click.command()
@domain_argument()
@click.option("--freeze", is_flag=True, help="Freeze (all filesystems).")
@click.option("--thaw", is_flag=True, help="Thaw all (cancels an auto-thaw).")
@click.option(
    "--mountpoint",
    "mountpoints",
    multiple=True,
    metavar="MP",
    shell_complete=completion.complete_mountpoints,
    help="Freeze only this mount point (repeat for more); with --freeze or --run.",
)
@click.option(
    "--auto-thaw",
    type=click.FloatRange(min=1, max=86400),
    metavar="SECONDS",
    help="With --freeze: a watchdog thaws after SECONDS, even if qgactl is gone.",
)
@click.option("--run", "command", metavar="CMD", help="Freeze, run CMD (/bin/sh -c), thaw.")
@click.option(
    "--timeout-run",
    type=click.FloatRange(min=0.1, max=86400),
    metavar="SECONDS",
    help="With --run: kill CMD's process group after SECONDS, then thaw (exit 124).",
)
@pass_app
def fsfreeze(
    app: App,
    domain: str | None,
    freeze: bool,
    thaw: bool,
    mountpoints: tuple[str, ...],
    auto_thaw: float | None,
    command: str | None,
    timeout_run: float | None,
) -> int:
    """Freeze or thaw a guest's filesystems, or run a host command while they are frozen.

    \b
      qgactl fsfreeze vm1                          thawed or frozen (and any auto-thaw)
      qgactl fsfreeze vm1 --freeze --auto-thaw 60  freeze; thawed in 60 s whatever happens
      qgactl fsfreeze vm1 --thaw                   thaw all, cancel the auto-thaw
      qgactl fsfreeze vm1 --run 'lvcreate -s -n snap -L 1G vg/vm1'

    qemu-ga never thaws by itself. --run thaws whatever happens: CMD fails, hangs past
    --timeout-run, qgactl gets SIGINT, SIGTERM or SIGHUP, or the freeze fails half way; a
    watchdog armed before the freeze thaws within a second even if qgactl is killed (CMD is
    then left running). A plain --freeze stays until --thaw, or until --auto-thaw's watchdog
    thaws it (that one outlives qgactl; --thaw or the next freeze cancels it). A guest that is
    already frozen is left alone (exit 6). Freeze and thaw wait up to 30 s for the agent
    unless -t says otherwise.

    \b
    Exit status with --run:
      CMD's own status   CMD ran and the guest was thawed (128+N: a signal N killed CMD)
      124                CMD ran past --timeout-run: its process group was killed, then thawed
      125                the freeze or the thaw failed (see the message; CMD did not run if
                         the freeze failed; after a failed thaw a watchdog keeps trying)
      128+N              qgactl got signal N (SIGHUP 129, SIGINT 130, SIGTERM 143): CMD was
                         stopped, then the guest was thawed
    """
    if freeze and thaw:
        raise InvalidUsage("--freeze or --thaw, not both", hint="see qgactl fsfreeze --help")
    action = "freeze" if freeze else "thaw" if thaw else None
    _check_options(action, mountpoints, auto_thaw, command, timeout_run)
    app.check_target(domain)
    if command is not None:
        return _run_frozen(app, domain, mountpoints, command, timeout_run)
    if action == "freeze":
        return _freeze(app, domain, mountpoints, auto_thaw)
    if action == "thaw":
        return _thaw(app, domain)
    return _status(app, domain)


def _check_options(
    action: str | None,
    mountpoints: tuple[str, ...],
    auto_thaw: float | None,
    command: str | None,
    timeout_run: float | None,
) -> None:
    hint = "see qgactl fsfreeze --help"
    if command is not None and action:
        raise InvalidUsage(f"--run freezes and thaws by itself: drop --{action}", hint=hint)
    if mountpoints and action != "freeze" and command is None:
        raise InvalidUsage("--mountpoint goes with --freeze or --run", hint=hint)
    if auto_thaw is not None and action != "freeze":
        raise InvalidUsage("--auto-thaw goes with --freeze", hint=hint)
    if timeout_run is not None and command is None:
        raise InvalidUsage("--timeout-run goes with --run", hint=hint)


def _status(app: App, domain: str | None) -> int:
    agent = app.open_agent(domain)
    status = agent.fsfreeze_status()
    armed = watchdog.pending(_state_key(app, domain))
    data = {"target": app.target_name(domain), "status": status, "auto_thaw": _armed_json(armed)}
    app.terminal.result(data, lambda: tables.freeze_table(data), raw=agent.last_reply)
    return ExitCode.OK


def _freeze(
    app: App, domain: str | None, mountpoints: Sequence[str], auto_thaw: float | None
) -> int:
    """--freeze: arm the auto-thaw first, then freeze (and thaw again if that fails)."""
    guest = _Guest(app, domain)
    agent = guest.open_thawed()
    auto = None
    if auto_thaw is not None:
        auto = watchdog.start(guest.watchdog_target(), seconds=auto_thaw, key=guest.key)
    with DeferredSignals() as signals:
        try:
            count = guest.freeze(agent, mountpoints)
        except AlreadyFrozen:
            watchdog.cancel(guest.key)  # frozen by someone else: our auto-thaw must not thaw it
            raise
        except BaseException:
            app.terminal.warn(f"{guest.name}: the freeze failed; thawing in case it got half way")
            guest.thaw()
            raise
        if count == 0:
            watchdog.cancel(guest.key)  # nothing to thaw
        if signals.received:
            guest.thaw()
            return 128 + signals.received
    armed = watchdog.pending(guest.key)
    data = {
        "target": guest.name,
        "status": "frozen" if count else "thawed",
        "frozen": count,
        "auto_thaw": _armed_json(armed),
    }
    app.terminal.result(data, lambda: tables.freeze_table(data))
    if count == 0:
        app.terminal.warn(
            f"{guest.name}: nothing was frozen (no such mount point, none freezable, "
            "or frozen already through another agent channel)"
        )
    elif auto and armed and app.terminal.stderr_is_terminal:
        _count_down(app, guest.name, armed, auto)
    elif not armed:
        app.terminal.note(f"{guest.name} stays frozen until: qgactl fsfreeze {guest.name} --thaw")
    return ExitCode.OK


def _thaw(app: App, domain: str | None) -> int:
    """--thaw: thaw first, then cancel the auto-thaw (a failed thaw leaves it armed)."""
    agent = app.open_agent(domain, timeout=_freeze_timeout(app))
    try:
        count = agent.fsfreeze_thaw()
    finally:
        agent.close()
    cancelled = watchdog.cancel(_state_key(app, domain))
    data = {
        "target": app.target_name(domain),
        "status": "thawed",
        "thawed": count,
        "auto_thaw_cancelled": cancelled.pid if cancelled else None,
    }
    app.terminal.result(data, lambda: tables.freeze_table(data), raw=agent.last_reply)
    return ExitCode.OK


# -- --run --------------------------------------------------------------------------------------


def _run_frozen(
    app: App,
    domain: str | None,
    mountpoints: Sequence[str],
    command: str,
    timeout_run: float | None,
) -> int:
    """Freeze, run CMD, thaw whatever happened; the exit status says what happened."""
    guest = _Guest(app, domain)
    agent = guest.open_thawed()
    # Armed before the freeze: from here on, even SIGKILL of qgactl can't leave it frozen.
    guard = watchdog.start(guest.watchdog_target(), seconds=None, guard=True)
    started = time.monotonic()
    status: int = ExitCode.EXEC_FAILED
    with DeferredSignals() as signals:
        try:
            count: int | None = guest.freeze(agent, mountpoints)
        except AlreadyFrozen:
            _stop(guard)  # frozen by someone else: the guard must not thaw it when we exit
            raise
        except QgactlError as exc:
            count = None
            app.terminal.error(exc)  # CMD won't run
            app.terminal.warn(f"{guest.name}: thawing in case the freeze got half way")
        try:
            if count is not None and not signals.received:
                app.terminal.note(
                    f"froze {tables.filesystems(count)} of {guest.name}; running: {command}"
                )
                status = _run_command(command, timeout_run, signals)
        finally:
            thawed = guest.thaw()
    if thawed is None:
        return ExitCode.EXEC_FAILED  # the guard keeps trying once we are gone
    _stop(guard)
    seconds = time.monotonic() - started
    app.terminal.note(f"thawed {tables.filesystems(thawed)} of {guest.name} after {seconds:.1f} s")
    return 128 + signals.received if signals.received else status


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


# -- one guest's freeze and thaw --------------------------------------------------------------


class _Guest:
    """What a freeze and its thaw share: the target, the timeout, the auto-thaw state key."""

    def __init__(self, app: App, domain: str | None) -> None:
        self.app = app
        self.domain = domain
        self.name = app.target_name(domain)
        self.timeout = _freeze_timeout(app)
        self.key = _state_key(app, domain)

    def watchdog_target(self) -> watchdog.Target:
        return watchdog.Target.of(self.app, self.domain, self.timeout)

    def open_thawed(self) -> Agent:
        """An agent for a thawed guest. The agent's own refusal of a second freeze says
        "disabled", so ask first and say it plainly."""
        agent = self.app.open_agent(self.domain, timeout=self.timeout)
        if agent.fsfreeze_status() == "frozen":
            agent.close()
            raise self._already_frozen()
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
                raise self._already_frozen() from None
            raise
        finally:
            agent.close()

    def thaw(self) -> int | None:
        """Thaw with retries, then cancel the auto-thaw; the count, or None (and an error on
        stderr) if it never worked."""

        def retrying(exc: QgactlError) -> None:
            self.app.terminal.warn(f"{self.name}: thaw failed ({exc.message}); trying again")

        try:
            count = watchdog.thaw_until_done(
                lambda: self.app.open_agent(self.domain, timeout=self.timeout),
                give_up=THAW_RETRY_SECONDS,
                on_retry=retrying,
            )
        except QgactlError as exc:
            exc.hint = f"THE GUEST MAY STILL BE FROZEN: qgactl fsfreeze {self.name} --thaw"
            self.app.terminal.error(exc)
            return None
        watchdog.cancel(self.key)
        return count

    def _frozen_now(self) -> bool:
        try:
            agent = self.app.open_agent(self.domain)
            try:
                return agent.fsfreeze_status() == "frozen"
            finally:
                agent.close()
        except QgactlError:
            return False

    def _already_frozen(self) -> AlreadyFrozen:
        return AlreadyFrozen(
            f"{self.name}: the filesystems are already frozen",
            hint=f"thaw them first: qgactl fsfreeze {self.name} --thaw",
            domain=self.name,
        )


def _freeze_timeout(app: App) -> float:
    """-t when given, else FREEZE_TIMEOUT: a freeze first syncs all dirty data, and giving up
    early only leaves the agent freezing with nobody waiting for it."""
    root = click.get_current_context().find_root()
    if root.get_parameter_source("timeout") == click.core.ParameterSource.DEFAULT:
        return max(app.timeout, FREEZE_TIMEOUT)
    return app.timeout


def _state_key(app: App, domain: str | None) -> str:
    """Which auto-thaw state belongs to this guest: its UUID, or a hash of the socket path."""
    if domain is None:
        import hashlib  # only here: it costs fsinfo & co. start-up time

        path = os.path.realpath(app.socket_path or "")
        return "socket-" + hashlib.sha256(path.encode()).hexdigest()[:16]
    return "uuid-" + app.describe(domain).uuid


def _count_down(
    app: App, target: str, armed: watchdog.Pending, process: subprocess.Popen[bytes]
) -> None:
    """On a terminal: wait for the auto-thaw with a live countdown; Ctrl-C stops watching."""
    try:
        with app.terminal.status(f"{target} frozen") as update:
            while process.poll() is None:
                left = armed.seconds_left
                update(f"{target} frozen: auto-thaw in {left:.0f} s (Ctrl-C: stop watching)")
                time.sleep(0.2)
    except KeyboardInterrupt:
        app.terminal.note(
            f"{target} stays frozen; auto-thaw in {armed.seconds_left:.0f} s "
            f"(watchdog pid {armed.pid}), or now: qgactl fsfreeze {target} --thaw"
        )
        return
    outcome = "thawed it" if process.returncode == 0 else "could not thaw it: check it now"
    app.terminal.note(f"{target}: the auto-thaw watchdog {outcome}")


def _armed_json(armed: watchdog.Pending | None) -> dict[str, Any] | None:
    return armed.to_json() if armed else None


# -- fstrim, fsinfo, disks --------------------------------------------------------------------


@click.command()
@targets_argument
@click.option(
    "--minimum",
    type=click.IntRange(min=0),
    metavar="BYTES",
    help="Skip free ranges smaller than this (a hint the guest may ignore).",
)
@pass_app
def fstrim(app: App, domain: tuple[str, ...], all_domains: bool, minimum: int | None) -> int:
    """Discard unused blocks of the guest's filesystems (guest-fstrim).

    Trimming can take minutes on a big disk: raise -t. A path the guest could not trim has its
    own error in the table, and the command still exits 0.
    """
    return fleet.fan_out(
        app,
        domain,
        all_domains,
        lambda agent: agent.fstrim(minimum),
        lambda results: {"paths": [result.to_json() for result in results]},
        tables.trim_table,
        single=lambda results: [result.to_json() for result in results],
    )


@click.command()
@targets_argument
@pass_app
def fsinfo(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The guest's mounted filesystems: type, device, space used, and the disks under them."""
    return fleet.fan_out(
        app,
        domain,
        all_domains,
        lambda agent: agent.fsinfo(),
        lambda found: {"filesystems": [fs.to_json() for fs in found]},
        tables.fsinfo_table,
        single=lambda found: [fs.to_json() for fs in found],
    )


@click.command()
@targets_argument
@pass_app
def disks(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The guest's block devices (guest-get-disks, qemu-ga 5.2+): bus, serial, dependencies."""
    return fleet.fan_out(
        app,
        domain,
        all_domains,
        lambda agent: agent.disks(),
        lambda found: {"disks": [disk.to_json() for disk in found]},
        tables.disks_table,
        single=lambda found: [disk.to_json() for disk in found],
    )
