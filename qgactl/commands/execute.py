"""exec: run a command in the guest (Guest.exec), on one target or many."""

from __future__ import annotations

import base64
import contextlib
import io
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from qgactl import completion, fanout, guest_exec, targeting
from qgactl.app import App, pass_app
from qgactl.commands import fleet
from qgactl.errors import ExitCode, InvalidUsage, QgactlError
from qgactl.signals import DeferredSignals

if TYPE_CHECKING:
    from pathlib import Path

    from qgactl.fanout import Outcome
    from qgactl.results import Completed
    from qgactl.targeting import Target, Targets


@click.command()
@click.option("-i", "--stdin", "send_stdin", is_flag=True, help="Send qgactl's stdin to CMD.")
@click.option(
    "-e",
    "--env",
    multiple=True,
    metavar="NAME=VALUE",
    callback=lambda _ctx, _param, pairs: _checked_env(pairs),
    help="Set a variable for CMD (repeat).",
)
@click.option(
    "--timeout-run",
    type=click.FloatRange(min=0.1, max=86400 * 7),
    metavar="SECONDS",
    help="Kill CMD in the guest after SECONDS (TERM, then KILL): exit 124.",
)
@click.option("-s", "--shell", is_flag=True, help="Run CMD through the guest's /bin/sh -c.")
@click.option("--cwd", metavar="DIR", help="Run CMD in DIR (POSIX guests).")
@click.option(
    "-u",
    "--user",
    metavar="USER",
    help="Run CMD as USER, a name or a uid (POSIX guests: runuser if the guest has it, else su).",
)
@click.option(
    "--all", "all_domains", is_flag=True, help="On every running domain with an agent channel."
)
@click.option(
    "-g", "--group", is_flag=True, help="Several targets: each one's output whole, under a heading."
)
@click.option(
    "--detach",
    is_flag=True,
    help="Start CMD as a job that outlives qgactl and print its id (see qgactl job --help).",
)
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    metavar="N",
    help="Several targets: start no new one once N have failed or exited non-zero.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Several targets: DIR/TARGET/stdout, stderr and status; only the summary is shown.",
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
    cwd: str | None,
    user: str | None,
    all_domains: bool,
    group: bool,
    detach: bool,
    max_errors: int | None,
    output_dir: str | None,
    words: tuple[str, ...],
) -> int:
    """Run CMD in the guest; its stdout, stderr and exit status become qgactl's.

    \b
      qgactl exec vm1 -- uname -a
      qgactl exec vm1 -s -- 'dmesg | tail -5'
      tar -c dir | qgactl exec -i vm1 -- tar -x -C /srv
      qgactl -o json exec vm1 -- cat /etc/hostname

    CMD's output appears as it is produced, on a terminal and in a pipe alike (byte for byte
    into a pipe; on a terminal control characters are shown escaped). CMD gets no stdin
    unless -i is given (-i reads qgactl's stdin to its end first: the agent can't stream
    stdin). Output of any size is spooled in the guest (/run/qgactl) and read in chunks, so
    it never passes libvirt's reply limits. --cwd and --user (a name or a uid; through the
    guest's runuser, else su) work on POSIX guests. Windows guests (no /bin/sh) use the
    agent's own capture: output at the end, 16 MiB a stream, stdin up to 160 KiB. CMD's own
    options need the "--" before CMD. A kill (Ctrl-C, SIGTERM, --timeout-run) reaches CMD and
    every process it started, found by QGACTL_EXEC_ID in their environment.

    Several targets (a 'glob*', --all, several --socket or -c): CMD runs on all of them at
    once; each line of output is prefixed with its target as it comes (-g: each target's
    output whole under a heading, as it ends). --max-errors N starts no new target once N
    have failed (the rest are "skipped"); --output-dir DIR writes DIR/TARGET/stdout, stderr
    and status (the exit status) instead, a '/' in TARGET as '_'.

    \b
    Exit status: CMD's own; 124 killed after --timeout-run; 125 qgactl failed (or --cwd,
    --user refused); 126 CMD can't be executed; 127 CMD not found; 128+N CMD died of signal
    N; 130/143 qgactl got SIGINT/SIGTERM (CMD was killed in the guest). Several targets: 125
    if one could not run CMD, else the first non-zero status.
    """
    try:
        if detach:  # a job: commands/jobs.py
            from qgactl.commands import jobs

            named, argv = _split_words(app, words, all_domains)
            refused = {
                "-i": send_stdin,
                "--timeout-run": timeout_run is not None,
                "--cwd": cwd is not None,
                "--user": user is not None,
                "--all": all_domains,
                "-g": group,
                "--max-errors": max_errors is not None,
                "--output-dir": output_dir is not None,
            }
            return jobs.detach(app, named, argv, env, shell, refused)
        options = _Options(send_stdin, env, timeout_run, shell, cwd, user, group, max_errors)
        return _exec(app, options, words, all_domains, output_dir)
    except guest_exec.CannotRun:
        raise
    except QgactlError as exc:
        exc.exit_code = ExitCode.EXEC_FAILED  # like `docker run`: 125 is qgactl's own failure
        raise


def _checked_env(pairs: tuple[str, ...]) -> tuple[str, ...]:
    """-e's NAME=VALUE pairs, checked before exec or exec --detach starts anything."""
    for pair in pairs:
        if "=" not in pair or pair.startswith("="):
            raise click.BadParameter(f"{pair!r}: expected NAME=VALUE", param_hint="'-e' / '--env'")
    return pairs


class _Options(NamedTuple):
    send_stdin: bool
    env: tuple[str, ...]
    timeout_run: float | None
    shell: bool
    cwd: str | None
    user: str | None
    group: bool
    max_errors: int | None


def _exec(
    app: App, options: _Options, words: tuple[str, ...], all_domains: bool, output_dir: str | None
) -> int:
    named, argv = _split_words(app, words, all_domains)
    for flag, value in (("--cwd", options.cwd), ("--user", options.user)):
        if value is not None and not value:
            raise InvalidUsage(f"{flag}: empty")
    chosen = targeting.resolve(app, named, all_domains=all_domains)
    as_json = app.terminal.output == "json" and app.output_requested == "json"

    def run(target: Target, stdout: Any, stderr: Any, stdin: Any) -> Completed:
        with app.target_guest(target) as guest:
            return guest.exec(
                argv,
                stdout=stdout,
                stderr=stderr,
                stdin=stdin,
                env=options.env,
                shell=options.shell,
                cwd=options.cwd,
                user=options.user,
                timeout=options.timeout_run,
                cancelled=lambda: signals.received,
                raise_cannot_run=True,  # qgactl's own error (and exit status), not CMD's stderr
            )

    with DeferredSignals() as signals:
        if not chosen.plural and output_dir is None:  # one target into a folder: a list of one
            return _exec_one(app, chosen.items[0], run, argv, options, as_json)
        stdin = sys.stdin.buffer.read() if options.send_stdin else None  # the same for all
        printer = _Printer(app, options.group, chosen, None if as_json else output_dir)

        def job(target: Target) -> tuple[Completed, bytes, bytes]:
            with printer.sinks(target, as_json) as (out, err):
                result = run(target, out, err, None if stdin is None else io.BytesIO(stdin))
                printer.status(target, str(result.status))
            return result, _kept(out), _kept(err)

        outcomes = fanout.run_all(
            chosen.items,
            job,
            app.jobs,
            max_failures=options.max_errors,
            failed=lambda outcome: not outcome.ok or outcome.value[0].status != 0,
        )
    for outcome in outcomes:
        if isinstance(outcome.error, fanout.NotStarted):
            printer.status(outcome.target, "skipped")
        elif outcome.error is not None:
            outcome.error.exit_code = ExitCode.EXEC_FAILED
            printer.status(outcome.target, str(int(ExitCode.EXEC_FAILED)))
    data = [
        {**fleet.entry(outcome, lambda value: _json(*value)), **_status_of(outcome)}
        for outcome in outcomes
    ]
    if as_json:
        app.terminal.result(data, lambda: None)
    for outcome in outcomes:
        if isinstance(outcome.error, fanout.NotStarted):
            outcome.error.message = f"{_name(outcome.target, chosen)}: {outcome.error.message}"
        if outcome.error is not None:
            app.terminal.error(outcome.error)
    _summary(app, outcomes)
    return _fleet_status(outcomes)


def _exec_one(
    app: App, target: Target, run: Any, argv: list[str], options: _Options, as_json: bool
) -> int:
    if target.failure is not None:
        raise target.failure
    if as_json:
        stdout, stderr = io.BytesIO(), io.BytesIO()
        sinks: tuple[Any, Any] = (stdout, stderr)
    else:
        sinks = (app.terminal.guest_bytes("stdout"), app.terminal.guest_bytes("stderr"))
    result = run(target, sinks[0], sinks[1], sys.stdin.buffer if options.send_stdin else None)
    if result.timed_out:
        app.terminal.warn(f"{target.label}: killed {argv[0]} after {options.timeout_run} s")
    if as_json:
        app.terminal.result(_json(result, stdout.getvalue(), stderr.getvalue()), lambda: None)
    return int(result.status)


def _name(target: Target, chosen: Targets) -> str:
    """A target as its output prefix and its --output-dir folder name it: the host too when
    there are several."""
    if chosen.hosts <= 1 or target.host is None:
        return target.label
    from urllib.parse import urlsplit

    return f"{target.label}@{urlsplit(target.host).hostname or target.host}"


def _kept(sink: Any) -> bytes:
    """What a sink kept for -o json (only a BytesIO keeps anything)."""
    return sink.getvalue() if isinstance(sink, io.BytesIO) else b""


class _Printer:
    """Several targets' output: every line prefixed with its target as it comes (as pdsh
    does), or with --group a heading and the target's whole output as it ends, or with
    --output-dir files per target; -o json keeps it all for the list."""

    def __init__(self, app: App, group: bool, chosen: Targets, output_dir: str | None) -> None:
        import threading

        self._lock = threading.Lock()
        self._group = group
        self._chosen = chosen
        self._dir = output_dir
        self._streams = (app.terminal.guest_bytes("stdout"), app.terminal.guest_bytes("stderr"))

    @contextlib.contextmanager
    def sinks(self, target: Target, as_json: bool) -> Iterator[tuple[Any, Any]]:
        """The two sinks one target's command writes to, flushed when it ends."""
        name = _name(target, self._chosen)
        if as_json:
            yield io.BytesIO(), io.BytesIO()
        elif self._dir is not None:
            folder = _folder(self._dir, name)
            with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
                yield out, err
        elif self._group:
            whole = io.BytesIO(), io.BytesIO()
            yield whole
            self._show_group(name, whole[0].getvalue(), whole[1].getvalue())
        else:
            lines = (_Lines(self, name, 0), _Lines(self, name, 1))
            try:
                yield lines
            finally:
                for sink in lines:
                    sink.close()

    def status(self, target: Target, status: str) -> None:
        """--output-dir: the exit status as text (or "skipped")."""
        if self._dir is not None:
            path = _folder(self._dir, _name(target, self._chosen)) / "status"
            path.write_text(f"{status}\n")

    def write(self, index: int, data: bytes) -> None:
        with self._lock:
            self._streams[index].write(data)

    def _show_group(self, name: str, out: bytes, err: bytes) -> None:
        with self._lock:
            for stream, data in zip(self._streams, (out, err)):
                if data:
                    ending = b"" if data.endswith(b"\n") else b"\n"
                    stream.write(f"--- {name}\n".encode() + data + ending)


class _Lines:
    """A sink that prints complete lines with a prefix, keeping a partial line until its
    newline arrives (or the command ends)."""

    def __init__(self, printer: _Printer, name: str, index: int) -> None:
        self._printer = printer
        self._prefix = name.encode() + b": "
        self._index = index
        self._partial = b""

    def write(self, data: bytes) -> int:
        whole, newline, partial = (self._partial + data).rpartition(b"\n")
        self._partial = partial
        if newline:
            lines = (whole + newline).splitlines(keepends=True)
            self._printer.write(self._index, b"".join(self._prefix + line for line in lines))
        return len(data)

    def close(self) -> None:
        if self._partial:
            self._printer.write(self._index, self._prefix + self._partial + b"\n")
            self._partial = b""


def _folder(output_dir: str, name: str) -> Path:
    from pathlib import Path  # only for --output-dir: pathlib costs ~5 ms of every exec's start

    folder = Path(output_dir, name.replace("/", "_"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _summary(app: App, outcomes: list[Outcome]) -> None:
    """On a terminal: how many succeeded, failed and were skipped."""
    if not app.terminal.stderr_is_terminal:
        return
    skipped = sum(isinstance(o.error, fanout.NotStarted) for o in outcomes)
    succeeded = sum(o.ok and o.value[0].status == 0 for o in outcomes)
    failed = len(outcomes) - succeeded - skipped
    app.terminal.note(
        f"{len(outcomes)} targets: {succeeded} succeeded, {failed} failed, {skipped} skipped"
    )


def _status_of(outcome: Outcome) -> dict[str, Any]:
    """A fan-out entry's exit_code, ok and state: the guest command's status, 125 if it could
    not run, and "skipped" (no exit_code) when --max-errors kept it from starting."""
    if isinstance(outcome.error, fanout.NotStarted):
        return {"exit_code": None, "state": "skipped"}
    if outcome.error is not None:
        return {"state": "failed"}
    status = outcome.value[0].status
    return {"exit_code": status, "ok": status == 0, "state": "ok" if status == 0 else "failed"}


def _fleet_status(outcomes: list[Outcome]) -> int:
    """125 when a target could not run the command, else the first non-zero guest status
    (a target --max-errors skipped changes nothing: others failed before it)."""
    ran = [o for o in outcomes if not isinstance(o.error, fanout.NotStarted)]
    if any(outcome.error is not None for outcome in ran):
        return ExitCode.EXEC_FAILED
    return next((o.value[0].status for o in ran if o.value[0].status), ExitCode.OK)


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


def _json(result: Completed, out: bytes, err: bytes) -> dict[str, Any]:
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
