"""guestinfo: the guest's state in one view (like `virsh guestinfo`, not flattened)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

from qgactl import tables
from qgactl.app import App, pass_app
from qgactl.commands.fleet import fan_out, targets_argument
from qgactl.guestinfo import PART_NAMES

_HELP = {
    "os": "The operating system (guest-get-osinfo).",
    "hostname": "The host name.",
    "users": "Who is logged in.",
    "timezone": "The time zone.",
    "fs": "Mounted filesystems and their disks.",
    "disks": "Block devices (qemu-ga 5.2+).",
    "net": "Network interfaces and addresses.",
    "load": "Load average (qemu-ga 10.0+).",
    "vcpus": "vCPUs, online or not.",
}


F = TypeVar("F", bound=Callable[..., Any])


def _part_options(function: F) -> F:
    """--os --hostname ... --vcpus, one flag per guestinfo.PARTS, in that order."""
    for name in reversed(PART_NAMES):
        function = click.option(f"--{name}", name, is_flag=True, help=_HELP[name])(function)
    return function


@click.command()
@targets_argument
@_part_options
@pass_app
def guestinfo(app: App, /, domain: tuple[str, ...], all_domains: bool, **parts: bool) -> int:
    """Everything the guest's agent reports, in one view.

    The options choose parts (all by default). Parts the agent lacks or blocks are left out.

    Through libvirt one virDomainGetGuestInfo call gathers os, hostname, users, timezone,
    fs, disks and net; load and vcpus (and everything over a socket) are agent calls. The
    JSON has the same shape either way; libvirt gives no disk bus addresses, no interface
    counters and no total_bytes_privileged (null).
    """
    chosen = [name for name, wanted in parts.items() if wanted]
    return fan_out(
        app,
        domain,
        all_domains,
        lambda guest: guest.guestinfo(*chosen),
        tables.guestinfo_table,
        raw=False,
    )
