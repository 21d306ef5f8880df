"""qgactl's subcommands, one module per area, imported only when their command runs.

Start-up time is a feature: `qgactl ping` should not pay for importing fsfreeze or XML code,
and `qgactl --help` imports none of the command modules. ``LazyGroup`` is the pattern from
Click's docs ("Lazily Loading Subcommands"). ``COMMANDS`` is the registry: each command's
section in ``qgactl --help``, where it lives, and its summary, which must be the first line of
its docstring (a test keeps them equal). Adding a command is one entry here.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# The sections of `qgactl --help`, in order, as an admin looks for a command.
SETUP = "Agent and setup"
INFORMATION = "Information"
FILES = "Files and commands"  # what runs in the guest or moves files to and from it
CONTROL = "Control"
FLEET = "Fleet"
SHELL = "Shell tools"
SECTIONS = (SETUP, INFORMATION, FILES, CONTROL, FLEET, SHELL)

# Text under a section instead of (or after) its commands.
SECTION_NOTES = {
    FLEET: "ping, info, exec and the other commands taking DOMAIN... also take several "
    "domains, 'globs*' or --all; repeat -c URI for several hosts; -j N talks to N at once.",
}

# name: (section, "module:attribute" under qgactl.commands, summary = first docstring line)
# fmt: off
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ping":           (SETUP,       "basics:ping",                "Is the agent up? Pings each target concurrently, one row each."),
    "info":           (SETUP,       "basics:info",                "The agent's version and every command it knows (enabled, replies on success)."),
    "doctor":         (SETUP,       "doctor:doctor",              "Why doesn't the agent answer? Checks DOMAIN (or --socket PATH) step by step."),
    "domains":        (SETUP,       "domains:domains",            "Every domain with its state, agent channel (none/configured/connected) and transport."),
    "add-channel":    (SETUP,       "channel:add_channel",        "Add the guest agent's channel (and, if needed, a virtio-serial controller)."),
    "remove-channel": (SETUP,       "channel:remove_channel",     "Remove the guest agent's channel; the virtio-serial controller stays."),
    "raw":            (SETUP,       "basics:raw",                 "Any agent command; prints the reply as the agent sent it."),
    "osinfo":         (INFORMATION, "basics:osinfo",              "The guest's operating system: name, version, kernel, machine."),
    "hostname":       (INFORMATION, "guest:hostname",             "The guest's host name (guest-get-host-name)."),
    "users":          (INFORMATION, "guest:users",                "Who is logged in to the guest, and since when (guest-get-users)."),
    "timezone":       (INFORMATION, "guest:timezone",             "The guest's time zone and its offset from UTC (guest-get-timezone)."),
    "time":           (INFORMATION, "guest:time_",                "The guest's clock and how far it is from the host's; or set it."),
    "net":            (INFORMATION, "guest:net",                  "The guest's network interfaces: MAC, addresses with prefix, counters."),
    "fsinfo":         (INFORMATION, "fs:fsinfo",                  "The guest's mounted filesystems: type, device, space used, and the disks under them."),
    "disks":          (INFORMATION, "fs:disks",                   "The guest's block devices (guest-get-disks, qemu-ga 5.2+): bus, serial, dependencies."),
    "vcpus":          (INFORMATION, "guest:vcpus",                "The guest's vCPUs, online or not; or bring some online or offline."),
    "memory":         (INFORMATION, "guest:memory",               "The guest's memory blocks (the units of memory hotplug) and their size."),
    "load":           (INFORMATION, "guest:load",                 "The guest's load average over 1, 5 and 15 minutes (guest-get-load, qemu-ga 10.0+)."),
    "diskstats":      (INFORMATION, "guest:diskstats",            "I/O counters of the guest's block devices (guest-get-diskstats, qemu-ga 7.1+)."),
    "cpustats":       (INFORMATION, "guest:cpustats",             "Time each guest CPU spent per state, in milliseconds (guest-get-cpustats, 7.1+)."),
    "guestinfo":      (INFORMATION, "guestinfo:guestinfo",        "Everything the guest's agent reports, in one view."),
    "exec":           (FILES,       "execute:exec_",              "Run CMD in the guest; its stdout, stderr and exit status become qgactl's."),
    "cp":             (FILES,       "files:cp",                   "Copy a file (or with -r a directory) between the host and a guest."),
    "cat":            (FILES,       "files:cat",                  "Print a guest file's bytes to stdout (on a terminal, control characters escaped)."),
    "fsfreeze":       (CONTROL,     "fs:fsfreeze",                "Freeze or thaw a guest's filesystems, or run a host command while they are frozen."),
    "fstrim":         (CONTROL,     "fs:fstrim",                  "Discard unused blocks of the guest's filesystems (guest-fstrim)."),
    "shutdown":       (CONTROL,     "control:shutdown",           "Shut the guest down from inside (guest-shutdown: the guest's own `shutdown`)."),
    "reboot":         (CONTROL,     "control:reboot",             "Reboot the guest from inside (guest-shutdown mode reboot)."),
    "suspend":        (CONTROL,     "control:suspend",            "Suspend the guest (guest-suspend-ram, -disk, -hybrid) and say how to wake it."),
    "set-password":   (CONTROL,     "accounts:set_password",      "Set USER's password in the guest."),
    "ssh-keys":       (CONTROL,     "accounts:ssh_keys",          "List, add or remove USER's authorized SSH keys in the guest."),
    "completion":     (SHELL,       "completion_cmd:completion",  "Print the completion script for SHELL (bash, zsh or fish)."),
}
# fmt: on


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = COMMANDS[cmd_name][1].split(":")
        command = getattr(importlib.import_module(f"qgactl.commands.{module_name}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands by section, each summary whole: Click's own list would import every
        command module for its help, and cut each summary to one line with "..."."""
        import textwrap  # already imported by Click's formatting

        names = max(map(len, COMMANDS)) + 2  # one name column for every section
        width = max(formatter.width - formatter.current_indent - names - 2, 30)
        for section in SECTIONS:
            with formatter.section(section):
                for name, (where, _, summary) in COMMANDS.items():
                    if where != section:
                        continue
                    # not at hyphens: "guest-get-time" stays one word
                    lines = textwrap.wrap(summary, width, break_on_hyphens=False)
                    for label, line in zip([name, *[""] * len(lines)], lines):
                        formatter.write(f"{'':{formatter.current_indent}}{label:<{names}}{line}\n")
                if section in SECTION_NOTES:
                    formatter.write_text(SECTION_NOTES[section])
