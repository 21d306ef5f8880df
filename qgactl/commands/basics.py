"""The basic agent commands: ping, info, osinfo, raw."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from qgactl import completion, fanout, targeting
from qgactl.app import App, pass_app
from qgactl.commands import fleet
from qgactl.commands.fleet import targets_argument
from qgactl.errors import (
    AgentTimeout,
    AgentUnavailable,
    ExitCode,
    InvalidUsage,
    NotFound,
    QgactlError,
)
from qgactl.ping import PingResult

if TYPE_CHECKING:
    from qgactl.targeting import Target

MAX_REQUEST_BYTES = 64 * 1024 * 1024  # guest-file-write's largest sensible chunk, base64

# Failures that may pass on their own while a guest boots: worth retrying under --wait.
_TRANSIENT = (AgentUnavailable, AgentTimeout)


@click.command()
@targets_argument
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="Retry until the agent answers or SECONDS pass (e.g. right after boot).",
)
@pass_app
def ping(app: App, domain: tuple[str, ...], all_domains: bool, wait: float) -> int:
    """Is the agent up? Pings each target concurrently, one row each.

    \b
      qgactl ping vm1 vm2 'web-*'
      qgactl -c qemu+ssh://kvm1/system -c qemu+ssh://kvm2/system ping --all
      qgactl --socket '/var/run/qemu-server/*.qga' ping

    Exits 0 when every agent answered, else with the first failure's code.
    """
    chosen = targeting.resolve(app, domain, all_domains=all_domains)
    with app.terminal.status(f"pinging {', '.join(t.label for t in chosen.items)}"):
        outcomes = fanout.run_all(chosen.items, lambda target: _ping(app, target, wait), app.jobs)
    results = [
        outcome.value
        or PingResult(outcome.target.label, None, None, outcome.target.host, outcome.error)
        for outcome in outcomes
    ]
    failures = [result.failure for result in results if result.failure]
    if not chosen.plural and failures:
        raise failures[0]
    for failure in failures:
        app.terminal.error(failure)

    def table() -> Any:
        from qgactl import tables  # not for JSON: tables.py imports every model

        return tables.ping_table(results, hosts=chosen.hosts > 1)

    app.terminal.result([result.to_json() for result in results], table)
    if chosen.plural:
        fleet.summary(app, outcomes)
    return failures[0].exit_code if failures else ExitCode.OK


def _ping(app: App, target: Target, wait: float) -> PingResult:
    """One target's ping; retried under --wait while the failure may pass on its own."""
    give_up = time.monotonic() + wait
    while True:
        remaining = give_up - time.monotonic()
        timeout = min(app.timeout, remaining) if remaining > 0.5 else app.timeout
        guest = app.target_guest(target, timeout=timeout)
        try:
            with guest:
                elapsed = guest.ping() * 1000
            return PingResult(target.label, guest.transport, round(elapsed, 3), target.host)
        except QgactlError as exc:
            retry = isinstance(exc, _TRANSIENT) or (
                isinstance(exc, NotFound) and target.socket  # the socket may not exist yet
            )
            if retry and time.monotonic() < give_up:
                time.sleep(min(0.5, max(0.0, give_up - time.monotonic())))
                continue
            return PingResult(target.label, guest.transport, None, target.host, exc)


@click.command()
@targets_argument
@pass_app
def info(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The agent's version and every command it knows (enabled, replies on success)."""
    from qgactl import tables

    return fleet.fan_out(
        app,
        domain,
        all_domains,
        lambda guest: guest.info(),
        tables.info_table,
    )


@click.command()
@targets_argument
@pass_app
def osinfo(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The guest's operating system: name, version, kernel, machine."""
    from qgactl import tables

    return fleet.fan_out(
        app,
        domain,
        all_domains,
        lambda guest: guest.osinfo(),
        tables.osinfo_table,
    )


@click.command()
@click.argument(
    "words",
    nargs=-1,
    required=True,
    metavar="[DOMAIN] REQUEST [ARGUMENTS]",
    shell_complete=completion.complete_raw_words,
)
@click.option("--pretty", is_flag=True, help="Indent the reply.")
@pass_app
def raw(app: App, words: tuple[str, ...], pretty: bool) -> None:
    """Any agent command; prints the reply as the agent sent it.

    REQUEST is a JSON request, "-" to read it from stdin (for secrets: a command line is
    visible to every user in `ps`), or just a command name with optional JSON ARGUMENTS:

    \b
      qgactl raw vm1 '{"execute":"guest-get-time"}'
      qgactl raw vm1 guest-get-fsinfo
      qgactl raw vm1 guest-exec-status '{"pid": 1234}'
      qgactl --socket /tmp/qga.sock raw guest-info --pretty
    """
    from qgactl.transport import parse_user_request

    domain, (request, *arguments) = app.split_domain(
        words, "REQUEST [ARGUMENTS]", hint="""e.g. qgactl raw vm1 '{"execute":"guest-ping"}'"""
    )
    if request == "-":  # from stdin: keeps secrets (guest-set-user-password) out of `ps`
        request = sys.stdin.read(MAX_REQUEST_BYTES + 1)
        if len(request) > MAX_REQUEST_BYTES:
            raise InvalidUsage(f"a request on stdin is limited to {MAX_REQUEST_BYTES} bytes")
    payload, command = parse_user_request(request, arguments[0] if arguments else None)
    # the request goes as the user wrote it: the Guest's low-level agent sends it untouched
    reply = app.guest(domain).agent.send(payload, command)
    if reply is not None and reply.is_error:
        reply.result(command)  # raises AgentCommandError: exit 6 with the guest's words
    if reply is not None:
        app.terminal.reply_text(reply.text, pretty=pretty)
