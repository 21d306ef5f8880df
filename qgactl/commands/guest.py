"""What the guest reports about itself: hostname, users, timezone, time, net, vcpus, memory,
load, diskstats, cpustats. Each is one agent call (two for memory) shown as a table or JSON.

A command the guest's agent lacks or blocks fails with the agent's own answer, naming the
command and the qemu-ga release that added it (errors.added_in): exit 6.
"""

from __future__ import annotations

import time

import click

from qgactl import tables, values
from qgactl.app import App, domain_argument, pass_app
from qgactl.errors import InvalidUsage


@click.command()
@domain_argument()
@pass_app
def hostname(app: App, domain: str | None) -> None:
    """The guest's host name (guest-get-host-name)."""
    agent = app.open_agent(domain)
    name = agent.hostname()
    app.terminal.result(name.to_json(), lambda: tables.hostname_table(name), raw=agent.last_reply)


@click.command()
@domain_argument()
@pass_app
def users(app: App, domain: str | None) -> None:
    """Who is logged in to the guest, and since when (guest-get-users)."""
    agent = app.open_agent(domain)
    found = agent.users()
    app.terminal.result(
        [user.to_json() for user in found], lambda: tables.users_table(found), raw=agent.last_reply
    )


@click.command()
@domain_argument()
@pass_app
def timezone(app: App, domain: str | None) -> None:
    """The guest's time zone and its offset from UTC (guest-get-timezone)."""
    agent = app.open_agent(domain)
    zone = agent.timezone()
    app.terminal.result(zone.to_json(), lambda: tables.timezone_table(zone), raw=agent.last_reply)


@click.command(name="time")
@domain_argument()
@click.option("--set", "set_to", metavar="TIME", help="Set the guest's clock to TIME.")
@click.option("--sync", is_flag=True, help="Set the guest's clock to the host's time now.")
@pass_app
def time_(app: App, domain: str | None, set_to: str | None, sync: bool) -> None:
    """The guest's clock and how far it is from the host's; or set it.

    \b
      qgactl time vm1                              guest time, drift from the host
      qgactl time vm1 --sync                       after a host suspend or a migration
      qgactl time vm1 --set 2026-12-01T10:15:00Z   ISO 8601 with a zone
      qgactl time vm1 --set 1796113366.5           seconds since the epoch

    Setting also writes the guest's hardware clock (hwclock -w). The clock is read back
    afterwards and shown.
    """
    if set_to is not None and sync:
        raise InvalidUsage("--set or --sync, not both", hint="see qgactl time --help")
    nanoseconds = values.parse_time(set_to) if set_to is not None else None
    agent = app.open_agent(domain)
    if sync:
        nanoseconds = time.time_ns()  # not the agent's default: that reads the guest's RTC
    if nanoseconds is not None:
        agent.set_time(nanoseconds)
    clock = agent.get_time()
    raw = agent.last_reply if nanoseconds is None else None
    app.terminal.result(clock.to_json(), lambda: tables.time_table(clock), raw=raw)


@click.command()
@domain_argument()
@click.option("--routes", is_flag=True, help="Also the routing table (qemu-ga 9.1+).")
@pass_app
def net(app: App, domain: str | None, routes: bool) -> None:
    """The guest's network interfaces: MAC, addresses with prefix, counters; --routes adds
    its routes (guest-network-get-interfaces, guest-network-get-route)."""
    agent = app.open_agent(domain)
    interfaces = agent.interfaces()
    if not routes:
        app.terminal.result(
            [i.to_json() for i in interfaces],
            lambda: tables.net_table(interfaces),
            raw=agent.last_reply,
        )
        return
    found = agent.routes()
    data = {"interfaces": [i.to_json() for i in interfaces], "routes": [r.to_json() for r in found]}
    app.terminal.result(data, lambda: tables.net_routes_table(interfaces, found))


@click.command()
@domain_argument()
@click.option("--enable", metavar="LIST", help="Bring these vCPUs online (1, 1-3, 0,2).")
@click.option("--disable", metavar="LIST", help="Take these vCPUs offline.")
@pass_app
def vcpus(app: App, domain: str | None, enable: str | None, disable: str | None) -> None:
    """The guest's vCPUs, online or not; or bring some online or offline (guest-get-vcpus,
    guest-set-vcpus). After a change the new state is read back and shown.

    The guest decides: most Linux guests can't take cpu 0 offline (exit 6).
    """
    if enable is not None and disable is not None:
        raise InvalidUsage("--enable or --disable, not both", hint="see qgactl vcpus --help")
    change = enable if enable is not None else disable
    cpus = values.parse_cpu_list(change) if change is not None else ()
    agent = app.open_agent(domain)
    if cpus:
        changed = agent.set_vcpus(cpus, online=enable is not None)
        verb = "brought online" if enable is not None else "took offline"
        app.terminal.note(
            f"{app.target_name(domain)}: the guest {verb} {tables.plural(changed, 'vCPU')}"
        )
    found = agent.vcpus()
    app.terminal.result(
        [vcpu.to_json() for vcpu in found],
        lambda: tables.vcpus_table(found),
        raw=None if cpus else agent.last_reply,
    )


@click.command()
@domain_argument()
@pass_app
def memory(app: App, domain: str | None) -> None:
    """The guest's memory blocks (the units of memory hotplug) and their size
    (guest-get-memory-blocks, guest-get-memory-block-info)."""
    agent = app.open_agent(domain)
    found = agent.memory()
    app.terminal.result(found.to_json(), lambda: tables.memory_table(found))


@click.command()
@domain_argument()
@pass_app
def load(app: App, domain: str | None) -> None:
    """The guest's load average over 1, 5 and 15 minutes (guest-get-load, qemu-ga 10.0+)."""
    agent = app.open_agent(domain)
    found = agent.load()
    app.terminal.result(found.to_json(), lambda: tables.load_table(found), raw=agent.last_reply)


@click.command()
@domain_argument()
@pass_app
def diskstats(app: App, domain: str | None) -> None:
    """I/O counters of the guest's block devices (guest-get-diskstats, qemu-ga 7.1+)."""
    agent = app.open_agent(domain)
    found = agent.diskstats()
    app.terminal.result(
        [d.to_json() for d in found], lambda: tables.diskstats_table(found), raw=agent.last_reply
    )


@click.command()
@domain_argument()
@pass_app
def cpustats(app: App, domain: str | None) -> None:
    """Time each guest CPU spent per state, in milliseconds (guest-get-cpustats, 7.1+)."""
    agent = app.open_agent(domain)
    found = agent.cpustats()
    app.terminal.result(
        [c.to_json() for c in found], lambda: tables.cpustats_table(found), raw=agent.last_reply
    )
