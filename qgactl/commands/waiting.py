"""wait: until guests' agents answer, or report an IP address (the engine is qgactl/waiting.py)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import click

from qgactl import fanout, targeting, waiting
from qgactl.app import App, pass_app
from qgactl.commands import fleet
from qgactl.commands.fleet import targets_argument
from qgactl.errors import ExitCode

if TYPE_CHECKING:
    from qgactl.targeting import Target


@click.command()
@targets_argument
@click.option(
    "--for",
    "want",
    type=click.Choice(waiting.WANTS),
    default="agent",
    show_default=True,
    help="agent: it answers; ip/ipv4/ipv6: it also reports such an address (printed).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="Give up after SECONDS: exit 5.",
)
@pass_app
def wait(app: App, domain: tuple[str, ...], all_domains: bool, want: str, timeout: float) -> int:
    """Wait until each target's agent answers (--for ip: and has an address); one row each.

    \b
      virsh start vm1 && qgactl wait vm1 --for ip
      qgactl wait 'web-*' --for ipv4 --timeout 120
      qgactl --socket /tmp/qga.sock wait

    A domain that is shut off is waited for until it starts; one with no agent channel at all
    fails at once (exit 4: qgactl add-channel). Through libvirt, qgactl listens for libvirt's
    agent events rather than polling where the host sends them. An address is one that is
    neither loopback nor link-local. Exits 0 when every target is ready, 5 at the timeout.
    """
    if not app.socket_paths:
        waiting.start_event_loop()  # before targeting.resolve opens the connections
    deadline = time.monotonic() + timeout
    chosen = targeting.resolve(app, domain, all_domains=all_domains)
    events = waiting.Events()
    for uri in {target.host for target in chosen.items if target.domain and not target.failure}:
        events.listen(app.host(uri).conn)
    done: list[str] = []
    lock = threading.Lock()

    with app.terminal.status(_waiting_text(chosen.items, done)) as update:

        def job(target: Target) -> waiting.Ready:
            try:
                return _until_ready(app, target, want, deadline, events)
            finally:
                with lock:
                    done.append(target.label)
                    update(_waiting_text(chosen.items, done))

        # Every target waits at once: the threads sleep, and a queue would eat the deadline.
        outcomes = fanout.run_all(chosen.items, job, max(app.jobs, len(chosen.items)))
    failures = [outcome.error for outcome in outcomes if outcome.error is not None]
    if not chosen.plural and failures:
        raise failures[0]
    for failure in failures:
        app.terminal.error(failure)
    data = [fleet.entry(outcome, lambda ready: ready.to_json()) for outcome in outcomes]
    app.terminal.result(data, lambda: _table(outcomes, want, chosen.hosts > 1))
    if chosen.plural:
        fleet.summary(app, outcomes)
    return int(failures[0].exit_code) if failures else ExitCode.OK


def _until_ready(
    app: App, target: Target, want: str, deadline: float, events: waiting.Events
) -> waiting.Ready:
    describe = None
    if target.domain is not None:
        host = app.host(target.host)
        found = host.lookup(target.domain)  # not found: at once, not at the deadline
        describe = lambda: host.describe(found)  # noqa: E731
    return waiting.until_ready(
        lambda left: app.target_guest(target).open_agent(min(app.timeout, left)),
        want,
        deadline,
        label=target.label,
        describe=describe,
        events=events,
        socket=target.socket is not None,
    )


def _waiting_text(items: list[Target], done: list[str]) -> str:
    left = [target.label for target in items if target.label not in done]
    shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return f"waiting for {shown}" if left else "done"


def _table(outcomes: list[fanout.Outcome], want: str, hosts: bool) -> Any:
    from qgactl import render

    columns = ["TARGET", *(["HOST"] if hosts else []), "READY"]
    columns += [] if want == "agent" else ["ADDRESSES"]
    rows = []
    for outcome in outcomes:
        ready = outcome.value
        row = [outcome.target.label, *([outcome.target.host] if hosts else [])]
        row.append(f"after {ready.seconds:.1f} s" if ready else "no")
        if want != "agent":
            row.append(tuple(ready.addresses) if ready else None)
        rows.append(row)
    return render.rows_table(columns, rows)
