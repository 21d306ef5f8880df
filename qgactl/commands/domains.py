"""`qgactl domains`: every domain, its state, its agent channel and how qgactl would reach it."""

from __future__ import annotations

import click

from qgactl import tables
from qgactl.app import App, pass_app


@click.command()
@pass_app
def domains(app: App) -> None:
    """Every domain with its state, agent channel (none/configured/connected) and transport."""
    libvirt = app.libvirt
    infos = libvirt.list_domains()
    rows = [info.to_json(remote=libvirt.is_remote) for info in infos]
    app.terminal.result(
        rows, lambda: tables.domains_table(infos, [row["transport"] for row in rows])
    )
