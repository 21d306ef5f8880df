"""`qgactl doctor`: why doesn't the agent answer? Guest.doctor's checks, rendered."""

from __future__ import annotations

from dataclasses import asdict

import click

from qgactl import completion, tables
from qgactl.app import App, pass_app
from qgactl.errors import ExitCode


@click.command()
@click.argument(
    "domain",
    required=False,
    metavar="[DOMAIN]",
    shell_complete=completion.complete_all_domains,
)
@pass_app
def doctor(app: App, domain: str | None) -> int:
    """Why doesn't the agent answer? Checks DOMAIN (or --socket PATH) step by step.

    \b
    libvirt    the connection opens (-c URI)
    domain     it exists and runs (if not: whether starting it would help)
    channel    an agent channel is in its XML; how qgactl reaches it
    connected  libvirt sees the agent's end of the channel open
    socket     the socket exists, who listens and who holds it
    ping       guest-ping answers, and how fast
    version    the agent's version (guest-info)
    frozen     whether the guest's filesystems are frozen
    disabled   commands the agent has disabled (its blocklist, or not on this OS)

    A failure comes with its fix and skips the checks after it. -o json for monitoring.

    Exit codes: 0 when every check passes, else the first failure's: 9 libvirt unreachable,
    3 no such domain or socket, 4 domain off, no channel, agent not connected or socket held
    by another client, 5 ping timed out, 6 the guest is frozen or the agent refused, 7 protocol
    error, 2 a --transport that doesn't fit the domain.
    """
    guest = app.guest(domain, look_up=False)  # a missing domain is one of its checks
    checks = guest.doctor()
    failed = next((check for check in checks if check.status == "fail"), None)
    code = failed.exit_code if failed else ExitCode.OK
    report = {
        "target": guest.name,
        "ok": failed is None,
        "exit_code": int(code),
        "checks": [{k: v for k, v in asdict(c).items() if k != "exit_code"} for c in checks],
    }
    app.terminal.result(
        report,
        lambda: tables.doctor_table(guest.name, checks),
    )
    return int(code)
