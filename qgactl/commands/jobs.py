"""job: the jobs `qgactl exec --detach` starts (Guest.start_job, jobs, wait_job...)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click

from qgactl import completion, jobs, targeting
from qgactl.app import App, pass_app
from qgactl.errors import ExitCode, InvalidUsage
from qgactl.signals import DeferredSignals

if TYPE_CHECKING:
    from qgactl.api import Guest

F = TypeVar("F", bound=Callable[..., Any])


def detach(
    app: App,
    named: list[str],
    argv: list[str],
    env: Sequence[str],
    shell: bool,
    refused: dict[str, bool],
) -> int:
    """exec --detach: start the job, print its id alone on a line (-o json: an object)."""
    given = [option for option, used in refused.items() if used]
    if given:
        raise InvalidUsage(f"--detach does not go with {', '.join(given)}")
    domain = named[0] if named else None
    if domain is not None and targeting.is_glob(domain):  # several -c or --socket: App.guest
        raise InvalidUsage("--detach starts a job on one guest", hint="name one DOMAIN")
    job_id = app.guest(domain).start_job(argv, env=env, shell=shell)
    if app.terminal.output == "json" and app.output_requested == "json":
        app.terminal.result({"id": job_id, "command": argv}, lambda: None)
    else:
        app.terminal.document(job_id + "\n")
    return ExitCode.OK


def _words(metavar: str) -> Callable[[F], F]:
    return click.argument(
        "words", nargs=-1, metavar=metavar, shell_complete=completion.complete_leading_domain
    )


@click.group("job")
def job() -> None:
    """Jobs started with `qgactl exec --detach`: they run on when qgactl exits.

    \b
      id=$(qgactl exec --detach vm1 -- apt-get -y upgrade)
      qgactl job list vm1
      qgactl job logs vm1 "$id" -f
      qgactl job wait vm1 "$id" --timeout 600
      qgactl job kill vm1 "$id"
      qgactl job rm vm1 "$id"

    A job's output and exit status stay in the guest (/run/qgactl/jobs/ID, root only) until
    `job rm`: they survive qgactl being killed, libvirtd restarting, and another qgactl (on
    another host) asking. A guest reboot clears them (/run is a tmpfs). POSIX guests only.
    """


@job.command("list")
@_words("[DOMAIN]")
@pass_app
def list_(app: App, words: tuple[str, ...]) -> None:
    """qgactl's jobs in the guest: id, command, started (UTC), state and exit status."""
    domain, _ = app.split_domain(words, "")
    found = app.guest(domain).jobs()

    def table() -> Any:
        from qgactl import render

        rows = [
            (j.id, shlex.join(j.command), j.to_json()["started"], j.state, j.status) for j in found
        ]
        return render.rows_table(("ID", "COMMAND", "STARTED", "STATE", "STATUS"), rows)

    app.terminal.result([j.to_json() for j in found], table)


@job.command()
@_words("[DOMAIN] ID")
@click.option(
    "-f", "--follow", is_flag=True, help="Follow until the job ends; exit with its status."
)
@pass_app
def logs(app: App, words: tuple[str, ...], follow: bool) -> int:
    """The job's output so far: its stdout on stdout, its stderr on stderr (exit 0).

    -f prints the output as it comes and exits with the job's status when it ends; Ctrl-C
    stops following, not the job.
    """
    domain, (job_id,) = app.split_domain(words, "ID")
    guest = _guest(app, domain, job_id)
    out, err = app.terminal.guest_bytes("stdout"), app.terminal.guest_bytes("stderr")
    if not follow:
        guest.job_output(job_id, out, err)
        return ExitCode.OK
    with DeferredSignals() as signals:
        found = guest.wait_job(job_id, stdout=out, stderr=err, cancelled=lambda: signals.received)
    return jobs.exit_status(found)


@job.command()
@_words("[DOMAIN] ID")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Give up after SECONDS: exit 5 (the job runs on).",
)
@pass_app
def wait(app: App, words: tuple[str, ...], timeout: float | None) -> int:
    """Wait for the job to end; exit with its status (5 at --timeout, 125 if it was lost)."""
    domain, (job_id,) = app.split_domain(words, "ID")
    guest = _guest(app, domain, job_id)
    with DeferredSignals() as signals, app.terminal.status(f"waiting for job {job_id}"):
        found = guest.wait_job(job_id, timeout=timeout, cancelled=lambda: signals.received)
    return jobs.exit_status(found)


@job.command()
@_words("[DOMAIN] ID")
@pass_app
def kill(app: App, words: tuple[str, ...]) -> None:
    """Kill the job's process group: TERM, then KILL after 2 s. Its status is recorded."""
    domain, (job_id,) = app.split_domain(words, "ID")
    if not _guest(app, domain, job_id).kill_job(job_id):
        app.terminal.note(f"job {job_id} had already ended")


@job.command()
@_words("[DOMAIN] [ID]")
@click.option("--all-finished", is_flag=True, help="Remove every job that has ended.")
@pass_app
def rm(app: App, words: tuple[str, ...], all_finished: bool) -> None:
    """Remove a finished job: its output and status are gone from the guest."""
    domain, rest = app.split_domain(words, "[ID]")
    if bool(rest) == all_finished:
        raise InvalidUsage("give a job ID or --all-finished (one of them)")
    job_id = rest[0] if rest else None
    removed = _guest(app, domain, job_id).remove_jobs(job_id)
    app.terminal.result(removed, lambda: _removed(removed))


def _guest(app: App, domain: str | None, job_id: str | None) -> Guest:
    """The guest, once the ID is known to be one (an error before any guest call)."""
    if job_id is not None:
        jobs.check_id(job_id)
    return app.guest(domain)


def _removed(ids: list[str]) -> Any:
    from rich.text import Text

    return Text("".join(f"removed {job_id}\n" for job_id in ids) or "no finished job\n")
