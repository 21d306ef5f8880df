"""What every fan-out command shares: its targets argument, and how its outcomes are shown.

``targets_argument`` gives a command DOMAIN... (names, UUIDs, IDs or 'globs*') and --all.
``fan_out`` runs the command's call on every target's Guest (qgactl/api.py, qgactl/fanout.py)
and prints:
- one target named plainly: exactly what the single-target command always printed;
- several: one block per target (a table, or its error), a HOST when there are several hosts,
  JSON as a list of {target, host, ok, exit_code, error, ...the command's own fields}, every
  failure as one line on stderr, and "N/M answered" on stderr when a person watches.
The exit status is 0 when every target succeeded, else the first failure's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click

from qgactl import completion, fanout, targeting
from qgactl.errors import ExitCode

if TYPE_CHECKING:
    from qgactl.api import Guest
    from qgactl.app import App
    from qgactl.fanout import Outcome
    from qgactl.targeting import Target, Targets

F = TypeVar("F", bound=Callable[..., Any])


def targets_argument(command: F) -> F:
    """DOMAIN... and --all, for a command that fans out."""
    command = click.option(
        "--all",
        "all_domains",
        is_flag=True,
        help="Every running domain with an agent channel (on each -c host).",
    )(command)
    return click.argument(
        "domain",
        nargs=-1,
        required=False,
        metavar="[DOMAIN|GLOB]...",
        shell_complete=completion.complete_running_domains,
    )(command)


def fan_out(
    app: App,
    domains: tuple[str, ...],
    all_domains: bool,
    call: Callable[[Guest], Any],
    table: Callable[[Any], Any],
    *,
    key: str | None = None,
    fields: Callable[[Any], dict[str, Any]] | None = None,
    raw: bool = True,
) -> int:
    """Run ``call`` on every target's Guest; ``table(value)`` shows a value. Its JSON is its
    ``to_json()``; for a list of models give ``key``: the list for one target, {key: [...]}
    in a fan-out list; anything else gives ``fields``. -o raw prints the agent's reply when
    ``call`` made one agent call (Agent.only_reply); ``raw=False`` for a call that also uses
    another RPC (guestinfo's virDomainGetGuestInfo)."""

    def as_json(value: Any) -> Any:
        if key is not None:
            return [item.to_json() for item in value]
        return fields(value) if fields is not None else value.to_json()

    def as_fields(value: Any) -> dict[str, Any]:
        data = as_json(value)
        return {key: data} if key is not None else data

    chosen = targeting.resolve(app, domains, all_domains=all_domains)
    if not chosen.plural:
        target = chosen.items[0]
        if target.failure is not None:
            raise target.failure
        guest = app.target_guest(target)
        value = call(guest)
        app.terminal.result(
            as_json(value), lambda: table(value), raw=guest.agent.only_reply if raw else None
        )
        return ExitCode.OK

    def job(target: Target) -> Any:
        with app.target_guest(target) as guest:
            return call(guest)

    with app.terminal.status(f"asking {len(chosen.items)} agents"):
        outcomes = fanout.run_all(chosen.items, job, app.jobs)
    return report(app, chosen, outcomes, as_fields, table)


def report(
    app: App,
    chosen: Targets,
    outcomes: list[Outcome],
    fields: Callable[[Any], dict[str, Any]],
    table: Callable[[Any], Any],
) -> int:
    """Errors on stderr, the list as JSON or blocks, the summary; returns the exit status."""
    for outcome in outcomes:
        if outcome.error is not None:
            app.terminal.error(outcome.error)
    data = [entry(outcome, fields) for outcome in outcomes]

    def blocks() -> Any:  # only when a table is drawn: -o json never builds one (nor imports rich)
        from qgactl import render

        return render.sections(
            [
                (
                    heading(outcome.target, chosen),
                    render.failure(outcome.error.message)
                    if outcome.error
                    else table(outcome.value),
                )
                for outcome in outcomes
            ]
        )

    app.terminal.result(data, blocks)
    return summary(app, outcomes)


def entry(outcome: Outcome, fields: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """One target's JSON object in a fan-out list."""
    error = outcome.error
    data: dict[str, Any] = {
        "target": outcome.target.label,
        "host": outcome.target.host,
        "ok": error is None,
        "exit_code": int(error.exit_code) if error else 0,
        "error": error.message if error else None,
    }
    if error is None:
        data.update(fields(outcome.value))
    return data


def heading(target: Target, chosen: Targets) -> str:
    return f"{target.label} on {target.host}" if chosen.hosts > 1 else target.label


def summary(app: App, outcomes: list[Outcome]) -> int:
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if app.terminal.stderr_is_terminal:
        app.terminal.note(
            f"{len(outcomes) - len(failed)}/{len(outcomes)} answered"
            + (f", {len(failed)} failed" if failed else "")
        )
    return int(failed[0].error.exit_code) if failed and failed[0].error else ExitCode.OK
