"""The basic agent commands: ping, info, osinfo, raw."""

from __future__ import annotations

import sys
import time

import click

from qgactl import completion, tables
from qgactl.app import App, domain_argument, pass_app
from qgactl.errors import (
    AgentTimeout,
    AgentUnavailable,
    ExitCode,
    InvalidUsage,
    NotFound,
    QgactlError,
)
from qgactl.models import PingResult

MAX_REQUEST_BYTES = 64 * 1024 * 1024  # guest-file-write's largest sensible chunk, base64

# Failures that may pass on their own while a guest boots: worth retrying under --wait.
_TRANSIENT = (AgentUnavailable, AgentTimeout)


@click.command()
@domain_argument(nargs=-1)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="Retry until the agent answers or SECONDS pass (e.g. right after boot).",
)
@pass_app
def ping(app: App, domain: tuple[str, ...], wait: float) -> int:
    """Is the agent up? Pings each DOMAIN concurrently, one row each.

    Exits 0 when every agent answered, else with the first failure's code.
    """
    targets: list[str | None] = list(domain) or [None]
    for target in targets:
        app.check_target(target)
    if not app.socket_path:
        app.libvirt.conn  # open once, before the threads share it  # noqa: B018
    names = ", ".join(app.target_name(target) for target in targets)
    with app.terminal.status(f"pinging {names}"):
        results = _ping_all(app, targets, wait)

    failures = [result.failure for result in results if result.failure]
    if len(results) == 1 and failures:
        raise failures[0]
    for failure in failures:
        app.terminal.error(failure)
    app.terminal.result(
        [result.to_json() for result in results], lambda: tables.ping_table(results)
    )
    return failures[0].exit_code if failures else ExitCode.OK


def _ping_all(app: App, targets: list[str | None], wait: float) -> list[PingResult]:
    """Ping the targets concurrently, up to 16 threads (threading rather than
    concurrent.futures, which imports logging: ~5 ms of start-up). One target needs no thread."""
    if len(targets) == 1:
        return [_ping_one(app, targets[0], wait)]
    import threading

    results: list[PingResult | None] = [None] * len(targets)
    crashes: list[BaseException] = []  # bugs, raised again in this thread
    pending = enumerate(targets)  # shared: next() on a C iterator is atomic, each target goes once

    def worker() -> None:
        for index, target in pending:
            try:
                results[index] = _ping_one(app, target, wait)
            except BaseException as exc:
                crashes.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(16, len(targets)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashes:
        raise crashes[0]
    return [result for result in results if result is not None]


def _ping_one(app: App, target: str | None, wait: float) -> PingResult:
    name = app.target_name(target)
    give_up = time.monotonic() + wait
    while True:
        transport = None
        try:
            remaining = give_up - time.monotonic()
            timeout = min(app.timeout, remaining) if remaining > 0.5 else app.timeout
            agent = app.open_agent(target, timeout=timeout)
            started = time.perf_counter()
            try:
                agent.ping()
            finally:
                agent.close()
                transport = agent.transport.kind  # after the call: auto may have fallen back
            elapsed = (time.perf_counter() - started) * 1000
            return PingResult(name, transport, round(elapsed, 3))
        except QgactlError as exc:
            retry = isinstance(exc, _TRANSIENT) or (
                isinstance(exc, NotFound) and app.socket_path  # the socket may not exist yet
            )
            if retry and time.monotonic() < give_up:
                time.sleep(min(0.5, max(0.0, give_up - time.monotonic())))
                continue
            return PingResult(name, transport, None, failure=exc)


@click.command()
@domain_argument()
@pass_app
def info(app: App, domain: str | None) -> None:
    """The agent's version and every command it knows (enabled, replies on success)."""
    agent = app.open_agent(domain)
    agent_info = agent.info()
    app.terminal.result(
        agent_info.to_json(), lambda: tables.info_table(agent_info), raw=agent.last_reply
    )


@click.command()
@domain_argument()
@pass_app
def osinfo(app: App, domain: str | None) -> None:
    """The guest's operating system: name, version, kernel, machine."""
    agent = app.open_agent(domain)
    os_info = agent.osinfo()
    app.terminal.result(
        os_info.to_json(), lambda: tables.osinfo_table(os_info), raw=agent.last_reply
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

    domain, (request, arguments) = _split_raw_words(app, words)
    if request == "-":  # from stdin: keeps secrets (guest-set-user-password) out of `ps`
        request = sys.stdin.read(MAX_REQUEST_BYTES + 1)
        if len(request) > MAX_REQUEST_BYTES:
            raise InvalidUsage(f"a request on stdin is limited to {MAX_REQUEST_BYTES} bytes")
    payload, command = parse_user_request(request, arguments)
    agent = app.open_agent(domain)
    reply = agent.send(payload, command)
    if reply is not None and reply.is_error:
        reply.result(command)  # raises AgentCommandError: exit 6 with the guest's words
    if reply is not None:
        app.terminal.reply_text(reply.text, pretty=pretty)


def _split_raw_words(app: App, words: tuple[str, ...]) -> tuple[str | None, tuple[str, str | None]]:
    """[DOMAIN] REQUEST [ARGUMENTS]: DOMAIN is there unless --socket names the agent."""
    rest = list(words)
    domain = None if app.socket_path else rest.pop(0)
    if not 1 <= len(rest) <= 2:
        raise InvalidUsage(
            "raw takes " + ("" if app.socket_path else "DOMAIN ") + "REQUEST [ARGUMENTS]",
            hint="""e.g. qgactl raw vm1 '{"execute":"guest-ping"}'""",
        )
    return domain, (rest[0], rest[1] if len(rest) == 2 else None)
