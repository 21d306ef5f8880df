"""The power commands: shutdown, reboot, suspend (Guest.shutdown and Guest.suspend)."""

from __future__ import annotations

import click

from qgactl import power, tables
from qgactl.app import App, domain_argument, pass_app
from qgactl.models import PowerResult

# shutdown's and reboot's --wait
_wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0.1, max=86400),
    metavar="SECONDS",
    help="Wait up to SECONDS for the outcome: the domain shut off (through libvirt), the "
    "agent's socket closed (--socket), or the agent answering again after a reboot.",
)


@click.command()
@domain_argument()
@click.option(
    "--mode",
    type=click.Choice(power.SHUTDOWN_MODES),
    default="powerdown",
    show_default=True,
    help="halt stops the CPUs without powering off (--wait can't see it).",
)
@_wait_option
@pass_app
def shutdown(app: App, domain: str | None, mode: str, wait: float | None) -> None:
    """Shut the guest down from inside (guest-shutdown: the guest's own `shutdown`).

    Exit codes: 0 asked (and, with --wait, done), 5 --wait ran out, 6 the agent refused.
    """
    _shutdown(app, domain, mode, wait)


@click.command()
@domain_argument()
@_wait_option
@pass_app
def reboot(app: App, domain: str | None, wait: float | None) -> None:
    """Reboot the guest from inside (guest-shutdown mode reboot).

    With --wait, returns once the agent went away and answers again.
    """
    _shutdown(app, domain, "reboot", wait)


def _shutdown(app: App, domain: str | None, mode: str, wait: float | None) -> None:
    guest = app.guest(domain)
    with app.terminal.status(f"{mode}: {guest.name}") as update:
        result = guest.shutdown(mode, wait=wait, progress=update)
    _show(app, result)


@click.command()
@domain_argument()
@click.option(
    "--mode",
    type=click.Choice(power.SUSPEND_MODES),
    required=True,
    help="ram: sleep in memory (S3); disk: hibernate and power off (S4); hybrid: both.",
)
@pass_app
def suspend(app: App, domain: str | None, mode: str) -> None:
    """Suspend the guest (guest-suspend-ram, -disk, -hybrid) and say how to wake it.

    Refused when the domain can't wake up from that mode (libvirt's <pm> disables S3).
    """
    _show(app, app.guest(domain).suspend(mode))


def _show(app: App, result: PowerResult) -> None:
    app.terminal.result(result.to_json(), lambda: tables.power_table(result))
