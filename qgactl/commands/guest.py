"""What the guest reports about itself: hostname, users, timezone, time, net, vcpus, memory,
load, diskstats, cpustats. Each is one agent call (two for memory) shown as a table or JSON,
for one target or many (commands/fleet.py).

A command the guest's agent lacks or blocks fails with the agent's own answer, naming the
command and the qemu-ga release that added it (errors.added_in): exit 6.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from qgactl import tables, values
from qgactl.app import App, pass_app
from qgactl.commands.fleet import fan_out, targets_argument
from qgactl.errors import InvalidUsage

if TYPE_CHECKING:
    from qgactl.api import Guest


@click.command()
@targets_argument
@pass_app
def hostname(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The guest's host name (guest-get-host-name)."""
    return fan_out(
        app, domain, all_domains, lambda guest: guest.hostname_info(), tables.hostname_table
    )


@click.command()
@targets_argument
@pass_app
def users(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """Who is logged in to the guest, and since when (guest-get-users)."""
    return fan_out(
        app,
        domain,
        all_domains,
        lambda guest: guest.users(),
        tables.users_table,
        key="users",
    )


@click.command()
@targets_argument
@pass_app
def timezone(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The guest's time zone and its offset from UTC (guest-get-timezone)."""
    return fan_out(app, domain, all_domains, lambda guest: guest.timezone(), tables.timezone_table)


@click.command(name="time")
@targets_argument
@click.option("--set", "set_to", metavar="TIME", help="Set the guest's clock to TIME.")
@click.option("--sync", is_flag=True, help="Set the guest's clock to the host's time now.")
@pass_app
def time_(
    app: App, domain: tuple[str, ...], all_domains: bool, set_to: str | None, sync: bool
) -> int:
    """The guest's clock and how far it is from the host's; or set it.

    \b
      qgactl time vm1                              guest time, drift from the host
      qgactl time vm1 --sync                       after a host suspend or a migration
      qgactl time --all --sync                     every guest's clock
      qgactl time vm1 --set 2026-12-01T10:15:00Z   ISO 8601 with a zone
      qgactl time vm1 --set 1796113366.5           seconds since the epoch

    Setting also writes the guest's hardware clock (hwclock -w). The clock is read back
    afterwards and shown.
    """
    if set_to is not None and sync:
        raise InvalidUsage("--set or --sync, not both", hint="see qgactl time --help")
    given = values.parse_time(set_to) if set_to is not None else None

    def call(guest: Guest) -> Any:
        # --sync: the host's time now, for each guest; not the agent's default without a
        # time, which reads the guest's own RTC
        nanoseconds = time.time_ns() if sync else given
        if nanoseconds is not None:
            guest.set_time(nanoseconds)
        return guest.time()

    return fan_out(app, domain, all_domains, call, tables.time_table)


@click.command()
@targets_argument
@click.option("--routes", is_flag=True, help="Also the routing table (qemu-ga 9.1+).")
@pass_app
def net(app: App, domain: tuple[str, ...], all_domains: bool, routes: bool) -> int:
    """The guest's network interfaces: MAC, addresses with prefix, counters.

    --routes adds its routes (guest-network-get-interfaces, guest-network-get-route)."""
    if not routes:
        return fan_out(
            app,
            domain,
            all_domains,
            lambda guest: guest.interfaces(),
            tables.net_table,
            key="interfaces",
        )

    def call(guest: Guest) -> Any:
        return guest.interfaces(), guest.routes()

    def fields(value: Any) -> dict[str, Any]:
        interfaces, found = value
        return {
            "interfaces": [i.to_json() for i in interfaces],
            "routes": [r.to_json() for r in found],
        }

    return fan_out(
        app, domain, all_domains, call, lambda value: tables.net_routes_table(*value), fields=fields
    )


@click.command()
@targets_argument
@click.option("--enable", metavar="LIST", help="Bring these vCPUs online (1, 1-3, 0,2).")
@click.option("--disable", metavar="LIST", help="Take these vCPUs offline.")
@pass_app
def vcpus(
    app: App,
    domain: tuple[str, ...],
    all_domains: bool,
    enable: str | None,
    disable: str | None,
) -> int:
    """The guest's vCPUs, online or not; or bring some online or offline.

    From guest-get-vcpus and guest-set-vcpus; after a change the new state is read back and
    shown.

    The guest decides: most Linux guests can't take cpu 0 offline (exit 6).
    """
    if enable is not None and disable is not None:
        raise InvalidUsage("--enable or --disable, not both", hint="see qgactl vcpus --help")
    change = enable if enable is not None else disable
    cpus = values.parse_cpu_list(change) if change is not None else ()

    def call(guest: Guest) -> Any:
        if cpus:
            changed = guest.set_vcpus(cpus, online=enable is not None)
            verb = "brought online" if enable is not None else "took offline"
            name = guest.agent.transport.target  # the domain's own name, even given by UUID
            app.terminal.note(f"{name}: the guest {verb} {tables.plural(changed, 'vCPU')}")
        return guest.vcpus()

    return fan_out(app, domain, all_domains, call, tables.vcpus_table, key="vcpus")


@click.command()
@targets_argument
@pass_app
def memory(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The guest's memory blocks (the units of memory hotplug) and their size.

    From guest-get-memory-blocks and guest-get-memory-block-info."""
    return fan_out(app, domain, all_domains, lambda guest: guest.memory(), tables.memory_table)


@click.command()
@targets_argument
@pass_app
def load(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """The guest's load average over 1, 5 and 15 minutes (guest-get-load, qemu-ga 10.0+)."""
    return fan_out(app, domain, all_domains, lambda guest: guest.load(), tables.load_table)


@click.command()
@targets_argument
@pass_app
def diskstats(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """I/O counters of the guest's block devices (guest-get-diskstats, qemu-ga 7.1+)."""
    return fan_out(
        app,
        domain,
        all_domains,
        lambda guest: guest.diskstats(),
        tables.diskstats_table,
        key="diskstats",
    )


@click.command()
@targets_argument
@pass_app
def cpustats(app: App, domain: tuple[str, ...], all_domains: bool) -> int:
    """Time each guest CPU spent per state, in milliseconds (guest-get-cpustats, 7.1+)."""
    return fan_out(
        app,
        domain,
        all_domains,
        lambda guest: guest.cpustats(),
        tables.cpustats_table,
        key="cpustats",
    )
