"""qgactl's subcommands, one module per area, imported only when their command runs.

Start-up time is a feature: `qgactl ping` should not pay for importing fsfreeze or XML code.
``LazyGroup`` is the pattern from Click's docs ("Lazily Loading Subcommands"); ``COMMANDS``
maps each command name to "module:attribute".
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS = {
    "add-channel": "qgactl.commands.channel:add_channel",
    "cat": "qgactl.commands.files:cat",
    "completion": "qgactl.commands.completion_cmd:completion",
    "cp": "qgactl.commands.files:cp",
    "cpustats": "qgactl.commands.guest:cpustats",
    "disks": "qgactl.commands.fs:disks",
    "diskstats": "qgactl.commands.guest:diskstats",
    "doctor": "qgactl.commands.doctor:doctor",
    "domains": "qgactl.commands.domains:domains",
    "exec": "qgactl.commands.execute:exec_",
    "fsfreeze": "qgactl.commands.fs:fsfreeze",
    "fsinfo": "qgactl.commands.fs:fsinfo",
    "fstrim": "qgactl.commands.fs:fstrim",
    "guestinfo": "qgactl.commands.guestinfo:guestinfo",
    "hostname": "qgactl.commands.guest:hostname",
    "info": "qgactl.commands.basics:info",
    "load": "qgactl.commands.guest:load",
    "memory": "qgactl.commands.guest:memory",
    "net": "qgactl.commands.guest:net",
    "osinfo": "qgactl.commands.basics:osinfo",
    "ping": "qgactl.commands.basics:ping",
    "raw": "qgactl.commands.basics:raw",
    "reboot": "qgactl.commands.control:reboot",
    "remove-channel": "qgactl.commands.channel:remove_channel",
    "set-password": "qgactl.commands.accounts:set_password",
    "shell": "qgactl.commands.shell:shell",
    "shutdown": "qgactl.commands.control:shutdown",
    "ssh-keys": "qgactl.commands.accounts:ssh_keys",
    "suspend": "qgactl.commands.control:suspend",
    "time": "qgactl.commands.guest:time_",
    "timezone": "qgactl.commands.guest:timezone",
    "users": "qgactl.commands.guest:users",
    "vcpus": "qgactl.commands.guest:vcpus",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command
