"""The command line: the root group, its global options, and main().

main() is the only place that turns errors into messages and exit codes (errors.ExitCode);
subcommands live in qgactl/commands/, one module per area, and share qgactl.app.App.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from qgactl import __version__, completion
from qgactl.app import App
from qgactl.commands import LazyGroup
from qgactl.errors import ExitCode, InvalidUsage, OutputClosed, QgactlError
from qgactl.render import Terminal

OUTPUT_CHOICES = ("auto", "table", "json", "raw")


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-c",
    "--connect",
    metavar="URI",
    multiple=True,
    envvar="LIBVIRT_DEFAULT_URI",
    help="libvirt URI (default qemu:///system; qemu+ssh://host/system for a remote host); "
    "repeat it to fan out over several hosts.",
)
@click.option(
    "--socket",
    metavar="PATH",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Talk straight to an agent socket (bare QEMU chardev, a dedicated channel); "
    "commands then take no DOMAIN. Repeat it, or quote a glob, for several.",
)
@click.option(
    "--transport",
    type=click.Choice(["auto", "libvirt", "socket"]),
    default="auto",
    show_default=True,
    help="How to reach a domain's agent (auto: libvirt, and the domain's dedicated socket when "
    "libvirt's channel is missing, disconnected or unavailable).",
)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0.1, max=86400),  # NaN passes FloatRange: see _finite
    callback=lambda _ctx, _param, value: _finite(value),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Deadline for each agent call (connect, sync and command together).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_CHOICES),
    default="auto",
    envvar="QGACTL_OUTPUT",
    show_default=True,
    help="auto = table on a terminal, JSON in a pipe; raw = the agent's reply untouched.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1, max=256),
    default=16,
    show_default=True,
    metavar="N",
    help="Targets talked to at once, when a command has several.",
)
@click.option("--debug", is_flag=True, help="Trace the wire on stderr; show tracebacks.")
@click.version_option(__version__, "--version", prog_name="qgactl")
@click.pass_context
def cli(
    ctx: click.Context,
    connect: tuple[str, ...],
    socket: tuple[str, ...],
    transport: str,
    timeout: float,
    output: str,
    jobs: int,
    debug: bool,
) -> None:
    """qgactl: the QEMU guest agent, from the host.

    \b
      qgactl ping vm1 vm2           is the agent up?
      qgactl info vm1               agent version and its commands
      qgactl raw vm1 guest-get-time any agent command (virsh qemu-agent-command)
      qgactl --socket /tmp/qga.sock ping

    Exit codes: 0 ok, 1 internal, 2 usage, 3 domain or socket not found, 4 agent unavailable,
    5 timeout, 6 agent error, 7 protocol error, 8 XML patch refused, 9 libvirt error,
    130 interrupted.
    """
    ctx.obj = App(
        timeout=timeout,
        output=output,
        debug=debug,
        connect=connect,
        transport=transport,
        socket=socket,
        jobs=jobs,
    )


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run, flush, and leave without Python's interpreter teardown.

    Tearing down Click, libvirt and typing at exit took 11 ms after a 16-guest ping (2.6 ms
    with os._exit: the time from run()'s return to the parent's wait), a tenth of the whole
    run, and does nothing qgactl needs: by then every connection is done, every thread joined
    and every file closed. What is left is flushing stderr (run() flushed stdout); then
    os._exit, as Instagram's "Dismissing Python Garbage Collection" does.
    """
    code = run(argv)
    sys.stderr.flush()
    os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the documented exit code; one line on stderr per error."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    terminal = Terminal(debug=debug)
    if completion.COMPLETE_VAR in os.environ:  # a shell asking for completions
        from qgactl import completion_scripts

        completion_scripts.register()
    try:
        result = cli.main(args=args, prog_name="qgactl", standalone_mode=False)
        code = result if isinstance(result, int) else ExitCode.OK
        with terminal.writing():
            terminal.stdout.flush()
    except OutputClosed:
        code = ExitCode.OK
    except QgactlError as exc:
        if debug:
            _print_traceback()
        terminal.error(exc)
        code = exc.exit_code
    except click.exceptions.Abort:
        code = ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except click.UsageError as exc:
        # One line, like every other error, instead of click's four-line usage block.
        command = exc.ctx.command_path if exc.ctx else "qgactl"
        hint = f"see {command} --help"
        if isinstance(exc, click.NoSuchOption) and command.endswith(" exec"):
            hint = "the guest command and its options go after --: qgactl exec DOMAIN -- CMD"
        terminal.error(InvalidUsage(exc.format_message(), hint=hint))
        code = exc.exit_code
    except click.ClickException as exc:
        terminal.error(QgactlError(exc.format_message()))
        code = exc.exit_code
    except Exception as exc:  # the last resort: a bug, not the user's fault
        if debug:
            _print_traceback()
        terminal.error(
            QgactlError(
                f"internal error: {type(exc).__name__}: {exc}",
                hint="run again with --debug and report the traceback",
            )
        )
        code = ExitCode.INTERNAL
    return int(code)


def _finite(value: float) -> float:
    if value != value:  # NaN compares false with every bound
        raise click.BadParameter("must be a number of seconds", param_hint="'-t' / '--timeout'")
    return value


def _print_traceback() -> None:
    import traceback  # only with --debug: it costs start-up time otherwise

    traceback.print_exc()
