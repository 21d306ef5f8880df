"""exec: run a command in the guest (the engine is qgactl/guest_exec.py)."""

from __future__ import annotations

import base64
import io
import sys
from typing import TYPE_CHECKING, Any

import click

from qgactl import completion, fanout, guest_exec, targeting
from qgactl.app import App, pass_app
from qgactl.commands import fleet
from qgactl.errors import ExitCode, InvalidUsage, QgactlError
from qgactl.signals import DeferredSignals

if TYPE_CHECKING:
    from qgactl.fanout import Outcome
    from qgactl.targeting import Target


@click.command()
@click.option("-i", "--stdin", "send_stdin", is_flag=True, help="Send qgactl's stdin to CMD.")
@click.option(
    "-e", "--env", multiple=True, metavar="NAME=VALUE", help="Set a variable for CMD (repeat)."
)
@click.option(
    "--timeout-run",
    type=click.FloatRange(min=0.1, max=86400 * 7),
    metavar="SECONDS",
    help="Kill CMD in the guest after SECONDS (TERM, then KILL): exit 124.",
)
@click.option("-s", "--shell", is_flag=True, help="Run CMD through the guest's /bin/sh -c.")
@click.option(
    "--all", "all_domains", is_flag=True, help="On every running domain with an agent channel."
)
@click.option(
    "-g", "--group", is_flag=True, help="Several targets: each one's output whole, under a heading."
)
@click.argument(
    "words",
    nargs=-1,
    required=True,
    metavar="[DOMAIN|GLOB] [--] CMD [ARGS]...",
    shell_complete=completion.complete_exec_words,
)
@pass_app
def exec_(
    app: App,
    send_stdin: bool,
    env: tuple[str, ...],
    timeout_run: float | None,
    shell: bool,
    all_domains: bool,
    group: bool,
    words: tuple[str, ...],
) -> int:
    """Run CMD in the guest; its stdout, stderr and exit status become qgactl's.

    \b
      qgactl exec vm1 -- uname -a
      qgactl exec vm1 -s -- 'dmesg | tail -5'
      tar -c dir | qgactl exec -i vm1 -- tar -x -C /srv
      qgactl -o json exec vm1 -- cat /etc/hostname

    CMD gets no stdin unless -i is given (-i reads qgactl's stdin to its end first: the agent
    can't stream). Output of any size is spooled in the guest (/run/qgactl) and read back in
    chunks, so it never passes libvirt's reply limits; on a terminal, control characters are
    shown escaped. Windows guests (no /bin/sh) use the agent's own capture: 16 MiB a stream,
    stdin up to 160 KiB. CMD's own options need the "--" before CMD.

    Several targets (a 'glob*', --all, several --socket or -c): CMD runs on all of them at
    once; each line of output is prefixed with its target (-g: grouped under a heading).

    \b
    Exit status: CMD's own; 124 killed after --timeout-run; 125 qgactl failed; 126 CMD can't
    be executed; 127 CMD not found; 128+N CMD died of signal N; 130/143 qgactl got
    SIGINT/SIGTERM (CMD was killed in the guest). Several targets: 125 if one could not run
    CMD, else the first non-zero status.
    """
    try:
        return _exec(app, send_stdin, env, timeout_run, shell, words, all_domains, group)
    except guest_exec.CannotRun:
        raise
    except QgactlError as exc:
        exc.exit_code = ExitCode.EXEC_FAILED  # like `docker run`: 125 is qgactl's own failure
        raise


def _exec(
    app: App,
    send_stdin: bool,
    env: tuple[str, ...],
    timeout_run: float | None,
    shell: bool,
    words: tuple[str, ...],
    all_domains: bool,
    group: bool,
) -> int:
    named, argv = _split_words(app, words, all_domains)
    for pair in env:
        if "=" not in pair or pair.startswith("="):
            raise InvalidUsage(f"--env {pair!r}: expected NAME=VALUE")
    chosen = targeting.resolve(app, named, all_domains=all_domains)
    as_json = app.terminal.output == "json" and app.output_requested == "json"

    def run(target: Target, stdout: Any, stderr: Any, stdin: Any) -> guest_exec.ExecResult:
        agent = fleet.open_agent(app, target)
        try:
            return guest_exec.run(
                agent,
                argv,
                stdout=stdout,
                stderr=stderr,
                stdin=stdin,
                env=env,
                shell=shell,
                timeout_run=timeout_run,
                cancelled=lambda: signals.received,
            )
        finally:
            agent.close()

    with DeferredSignals() as signals:
        if not chosen.plural:
            return _exec_one(app, chosen.items[0], run, argv, send_stdin, as_json, timeout_run)
        stdin = sys.stdin.buffer.read() if send_stdin else None  # the same for every target
        printer = _Printer(app, group)

        def job(target: Target) -> tuple[guest_exec.ExecResult, bytes, bytes]:
            out, err = io.BytesIO(), io.BytesIO()
            result = run(target, out, err, None if stdin is None else io.BytesIO(stdin))
            if not as_json:
                printer.show(target.label, out.getvalue(), err.getvalue())
            return result, out.getvalue(), err.getvalue()

        outcomes = fanout.run_all(chosen.items, job, app.jobs)
    for outcome in outcomes:
        if outcome.error is not None:
            outcome.error.exit_code = ExitCode.EXEC_FAILED
    data = [
        {**fleet.entry(outcome, lambda value: _json(*value)), **_status_of(outcome)}
        for outcome in outcomes
    ]
    if as_json:
        app.terminal.result(data, lambda: None)
    for outcome in outcomes:
        if outcome.error is not None:
            app.terminal.error(outcome.error)
    fleet.summary(app, outcomes)
    return _fleet_status(outcomes)


def _exec_one(
    app: App,
    target: Target,
    run: Any,
    argv: list[str],
    send_stdin: bool,
    as_json: bool,
    timeout_run: float | None,
) -> int:
    if target.failure is not None:
        raise target.failure
    if as_json:
        stdout, stderr = io.BytesIO(), io.BytesIO()
        sinks: tuple[Any, Any] = (stdout, stderr)
    else:
        sinks = (app.terminal.guest_bytes("stdout"), app.terminal.guest_bytes("stderr"))
    result = run(target, sinks[0], sinks[1], sys.stdin.buffer if send_stdin else None)
    if result.timed_out:
        app.terminal.warn(f"{target.label}: killed {argv[0]} after {timeout_run} s")
    if as_json:
        app.terminal.result(_json(result, stdout.getvalue(), stderr.getvalue()), lambda: None)
    return int(result.status)


class _Printer:
    """Several targets' output as each one finishes: every line prefixed with its target (as
    pdsh does), or with --group a heading and the target's whole output."""

    def __init__(self, app: App, group: bool) -> None:
        import threading

        self._lock = threading.Lock()
        self._group = group
        self._streams = (app.terminal.guest_bytes("stdout"), app.terminal.guest_bytes("stderr"))

    def show(self, label: str, out: bytes, err: bytes) -> None:
        with self._lock:
            for stream, data in zip(self._streams, (out, err)):
                if not data:
                    continue
                if self._group:
                    stream.write(
                        f"--- {label}\n".encode() + data + (b"" if data.endswith(b"\n") else b"\n")
                    )
                    continue
                prefix = label.encode() + b": "
                lines = data.splitlines(keepends=True)
                stream.write(
                    b"".join(
                        prefix + (line if line.endswith(b"\n") else line + b"\n") for line in lines
                    )
                )


def _status_of(outcome: Outcome) -> dict[str, Any]:
    """A fan-out entry's exit_code and ok: the guest command's status, or 125 if it never ran."""
    if outcome.error is not None:
        return {}
    result = outcome.value[0]
    return {"exit_code": result.status, "ok": result.status == 0}


def _fleet_status(outcomes: list[Outcome]) -> int:
    """125 when a target could not run the command, else the first non-zero guest status."""
    if any(outcome.error is not None for outcome in outcomes):
        return ExitCode.EXEC_FAILED
    return next((o.value[0].status for o in outcomes if o.value[0].status), ExitCode.OK)


def _split_words(
    app: App, words: tuple[str, ...], all_domains: bool
) -> tuple[list[str], list[str]]:
    """[DOMAIN|GLOB] CMD...: the target word is there unless --socket or --all names them."""
    rest = list(words)
    named = [] if app.socket_paths or all_domains else rest[:1]
    rest = rest[len(named) :]
    if not rest:
        raise InvalidUsage("no command given", hint="qgactl exec DOMAIN -- CMD [ARGS...]")
    return named, rest


def _json(result: guest_exec.ExecResult, out: bytes, err: bytes) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pid": result.pid,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "status": result.status,
        "timed_out": result.timed_out,
    }
    for name, raw, truncated in (
        ("stdout", out, result.stdout_truncated),
        ("stderr", err, result.stderr_truncated),
    ):
        data[name] = raw.decode("utf-8", errors="replace")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            data[f"{name}_base64"] = base64.b64encode(raw).decode()
        data[f"{name}_truncated"] = truncated
    return data
