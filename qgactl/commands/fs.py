"""Filesystem commands: fsfreeze (status, freeze, thaw, --run, --auto-thaw), fstrim, fsinfo, disks.

Nothing qgactl freezes stays frozen: how --run keeps that promise for a set of guests is
qgactl/freeze.py; a plain --freeze is covered by --auto-thaw's watchdog (qgactl/watchdog.py),
which thaws at its deadline even if the script that froze has died.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from qgactl import completion, freeze, tables, targeting, watchdog
from qgactl.app import App, pass_app
from qgactl.commands import fleet
from qgactl.commands.fleet import targets_argument
from qgactl.errors import ExitCode, InvalidUsage, QgactlError
from qgactl.freeze import AlreadyFrozen
from qgactl.signals import DeferredSignals
from qgactl.targeting import Target

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.api import Guest


# -- fsfreeze ---------------------------------------------------------------------------------


@click.command()
@click.argument(
    "domain",
    nargs=-1,
    metavar="[DOMAIN|GLOB]...",
    shell_complete=completion.complete_running_domains,
)
@click.option("--freeze", "freeze_", is_flag=True, help="Freeze (all filesystems).")
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
    domain: tuple[str, ...],
    freeze_: bool,
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
      qgactl fsfreeze db1 app1 --run ./snapshot-both.sh   both frozen while it runs

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
    if freeze_ and thaw:
        raise InvalidUsage("--freeze or --thaw, not both", hint="see qgactl fsfreeze --help")
    action = "freeze" if freeze_ else "thaw" if thaw else None
    _check_options(action, mountpoints, auto_thaw, command, timeout_run)
    chosen = targeting.resolve(app, domain)
    failed = next((target.failure for target in chosen.items if target.failure), None)
    if failed is not None:
        raise failed
    if command is not None:
        guests = [_guest(app, target) for target in chosen.items]
        return freeze.run_frozen(guests, mountpoints, command, timeout_run, app.terminal)
    if chosen.plural:
        raise InvalidUsage(
            "--freeze, --thaw and the status take one guest", hint="several go with --run CMD"
        )
    target = chosen.items[0]
    if action == "freeze":
        return _freeze(app, _guest(app, target), mountpoints, auto_thaw)
    if action == "thaw":
        return _thaw(app, target)
    return _status(app, target)


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


def _status(app: App, target: Target) -> int:
    guest = app.target_guest(target)
    status = guest.fsfreeze_status()
    armed = watchdog.pending(_state_key(app, target))
    data = {"target": target.label, "status": status, "auto_thaw": _armed_json(armed)}
    app.terminal.result(data, lambda: tables.freeze_table(data), raw=guest.agent.only_reply)
    return ExitCode.OK


def _freeze(
    app: App, guest: freeze.Guest, mountpoints: Sequence[str], auto_thaw: float | None
) -> int:
    """--freeze: arm the auto-thaw first, then freeze (and thaw again if that fails)."""
    agent = guest.open_thawed()
    auto = None
    if auto_thaw is not None:
        auto = watchdog.start(guest.watchdog_target, seconds=auto_thaw, key=guest.key)
    with DeferredSignals() as signals:
        try:
            count = guest.freeze(agent, mountpoints)
        except AlreadyFrozen:
            watchdog.cancel(guest.key)  # frozen by someone else: our auto-thaw must not thaw it
            raise
        except BaseException:
            app.terminal.warn(f"{guest.name}: the freeze failed; thawing in case it got half way")
            guest.thaw(app.terminal)
            raise
        if count == 0:
            watchdog.cancel(guest.key)  # nothing to thaw
        if signals.received:
            guest.thaw(app.terminal)
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


def _thaw(app: App, target: Target) -> int:
    """--thaw: thaw first, then cancel the auto-thaw (a failed thaw leaves it armed)."""
    # one thaw, not Guest.thaw's retries: a failure is reported and the auto-thaw stays armed
    agent = app.target_guest(target).open_agent(_freeze_timeout(app))
    try:
        count = agent.fsfreeze_thaw()
    finally:
        agent.close()
    cancelled = watchdog.cancel(_state_key(app, target))
    data = {
        "target": target.label,
        "status": "thawed",
        "thawed": count,
        "auto_thaw_cancelled": cancelled.pid if cancelled else None,
    }
    app.terminal.result(data, lambda: tables.freeze_table(data), raw=agent.only_reply)
    return ExitCode.OK


def _freeze_timeout(app: App) -> float:
    """-t when given, else freeze.FREEZE_TIMEOUT: a freeze first syncs all dirty data, and giving up
    early only leaves the agent freezing with nobody waiting for it."""
    root = click.get_current_context().find_root()
    if root.get_parameter_source("timeout") == click.core.ParameterSource.DEFAULT:
        return max(app.timeout, freeze.FREEZE_TIMEOUT)
    return app.timeout


def _guest(app: App, target: Target) -> freeze.Guest:
    timeout = _freeze_timeout(app)
    return freeze.Guest(
        target.label,
        _state_key(app, target),
        app.target_guest(target).open_agent,
        watchdog.Target(target.domain, target.socket, target.host, app.transport_choice, timeout),
        timeout,
    )


def _state_key(app: App, target: Target) -> str:
    """Which auto-thaw state belongs to this guest: its UUID, or a hash of the socket path."""
    if target.socket is not None:
        import hashlib  # only here: it costs fsinfo & co. start-up time

        path = os.path.realpath(target.socket)
        return "socket-" + hashlib.sha256(path.encode()).hexdigest()[:16]
    host = app.host(target.host)
    return "uuid-" + host.describe(host.lookup(target.domain or "")).uuid


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
    own error in the table, and the command still exits 0. Through libvirt, a warning names
    the domain's disks without discard='unmap': what the guest trims there stays allocated in
    the image on the host.
    """

    def trim(guest: Guest) -> Any:
        result = guest.fstrim(minimum, timeout=guest.timeout)  # -t, as every other call
        _warn_without_discard(app, guest.agent)
        return result

    return fleet.fan_out(app, domain, all_domains, trim, tables.trim_table, key="paths")


def _warn_without_discard(app: App, agent: Agent) -> None:
    """The guest reports trimmed bytes whether or not they reach the host: QEMU passes discards
    on to the image only with <driver discard='unmap'/> (PROTOCOL.md). The domain XML comes
    from libvirt; a bare --socket has none, and says nothing."""
    domain = getattr(agent.transport, "domain", None)
    if domain is None:
        return
    import libvirt

    from qgactl.xmlgen import disks_without_discard

    try:
        disks = disks_without_discard(domain.XMLDesc(0))
    except (libvirt.libvirtError, QgactlError):
        return  # the trim worked; the XML was only for this warning
    if disks:
        name = agent.transport.target
        app.terminal.warn(
            f"{name}: no discard='unmap' on disk {', '.join(disks)}: the trimmed blocks stay "
            f"allocated in the image on the host (fix: virsh edit {name}, "
            "<driver ... discard='unmap'/> in each <disk>, then shut down and start the domain)"
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
        lambda guest: guest.fsinfo(),
        tables.fsinfo_table,
        key="filesystems",
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
        lambda guest: guest.disks(),
        tables.disks_table,
        key="disks",
    )
