"""exec: run a command in the guest (the engine is qgactl/guest_exec.py)."""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

import click

from qgactl import completion, guest_exec
from qgactl.app import App, pass_app
from qgactl.errors import ExitCode, InvalidUsage, QgactlError
from qgactl.signals import DeferredSignals


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
@click.argument(
    "words",
    nargs=-1,
    required=True,
    metavar="[DOMAIN] [--] CMD [ARGS]...",
    shell_complete=completion.complete_exec_words,
)
@pass_app
def exec_(
    app: App,
    send_stdin: bool,
    env: tuple[str, ...],
    timeout_run: float | None,
    shell: bool,
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

    \b
    Exit status: CMD's own; 124 killed after --timeout-run; 125 qgactl failed; 126 CMD can't
    be executed; 127 CMD not found; 128+N CMD died of signal N; 130/143 qgactl got
    SIGINT/SIGTERM (CMD was killed in the guest).
    """
    try:
        return _exec(app, send_stdin, env, timeout_run, shell, words)
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
) -> int:
    domain, argv = _split_words(app, words)
    for pair in env:
        if "=" not in pair or pair.startswith("="):
            raise InvalidUsage(f"--env {pair!r}: expected NAME=VALUE")
    agent = app.open_agent(domain)
    as_json = app.terminal.output == "json" and app.output_requested == "json"
    if as_json:
        stdout, stderr = io.BytesIO(), io.BytesIO()
        sinks: tuple[Any, Any] = (stdout, stderr)
    else:
        sinks = (app.terminal.guest_bytes("stdout"), app.terminal.guest_bytes("stderr"))
    with DeferredSignals() as signals:
        result = guest_exec.run(
            agent,
            argv,
            stdout=sinks[0],
            stderr=sinks[1],
            stdin=sys.stdin.buffer if send_stdin else None,
            env=env,
            shell=shell,
            timeout_run=timeout_run,
            cancelled=lambda: signals.received,
        )
    if result.timed_out:
        app.terminal.warn(f"{app.target_name(domain)}: killed {argv[0]} after {timeout_run} s")
    if as_json:
        app.terminal.result(_json(result, stdout.getvalue(), stderr.getvalue()), lambda: None)
    return result.status


def _split_words(app: App, words: tuple[str, ...]) -> tuple[str | None, list[str]]:
    rest = list(words)
    domain = None if app.socket_path else rest.pop(0)
    if not rest:
        raise InvalidUsage("no command given", hint="qgactl exec DOMAIN -- CMD [ARGS...]")
    return domain, rest


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
