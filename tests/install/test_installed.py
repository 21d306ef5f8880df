"""The INSTALLED qgactl works: from the wheel, from the sdist, and from the .deb on Debian's own
python3-click, python3-rich, python3-lxml and python3-libvirt.

Each test runs once per install (the `installed` fixture): the console script, `python -m
qgactl`, every subcommand's --help (found from `qgactl --help`, so a new command is covered
here without editing this file), the completion scripts, and a real ping and info against the
host-run qemu-ga. What is particular to each package is in test_packages.py.
"""

from __future__ import annotations

import json
import re

import pytest
from installs import Installed

from qgactl import __version__

pytestmark = pytest.mark.install


def test_version(installed: Installed):
    for args in (("--version",), ("-m", "qgactl", "--version")):
        result = installed.run(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"qgactl, version {__version__}\n"


def test_runs_the_installed_modules(installed: Installed):
    where = installed.python_c("import qgactl.commands, qgactl.cli; print(qgactl.__file__)")
    assert where.startswith(installed.site), where


def subcommands(installed: Installed) -> list[str]:
    """The commands `qgactl --help` lists, section by section: a name, then its summary
    (options start with "-", and a section's note has no two spaces after its first word)."""
    result = installed.run("--help")
    assert result.returncode == 0, result.stderr
    return re.findall(r"^  ([a-z][a-z-]*)  ", result.stdout, re.MULTILINE)


def test_every_subcommand_has_help(installed: Installed):
    commands = subcommands(installed)
    assert {"ping", "info", "exec", "job", "wait", "shell", "completion"} <= set(commands), commands
    failed = {}
    for command in commands:
        result = installed.run(command, "--help")
        if result.returncode != 0 or f"Usage: qgactl {command} " not in result.stdout:
            failed[command] = result.stderr[-500:] or result.stdout[:200]
    assert not failed, failed


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion(installed: Installed, shell: str):
    script = installed.run("completion", shell)
    assert script.returncode == 0, script.stderr
    assert f"_QGACTL_COMPLETE={shell}_complete" in script.stdout, script.stdout
    # and what the script asks qgactl for answers (the protocol of the installed Click)
    cword = {"bash": "-1", "zsh": "1", "fish": "pi"}[shell]  # how each script says "the last"
    answer = installed.run(
        env={
            "_QGACTL_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": "qgactl pi",
            "COMP_CWORD": cword,
        }
    )
    assert answer.returncode == 0, answer.stderr
    assert "ping" in answer.stdout and "plain" in answer.stdout, answer.stdout


def test_ping_and_info_against_the_host_agent(installed: Installed, host_agent):
    ping = installed.run("--socket", host_agent.socket_path, "-o", "json", "ping")
    assert ping.returncode == 0, ping.stderr
    [result] = json.loads(ping.stdout)
    assert result["ok"] is True and result["transport"] == "socket"
    info = installed.run("--socket", host_agent.socket_path, "-o", "json", "info")
    assert info.returncode == 0, info.stderr
    commands = {c["name"]: c["enabled"] for c in json.loads(info.stdout)["commands"]}
    assert commands["guest-ping"] is True and commands["guest-exec"] is False
    table = installed.run("--socket", host_agent.socket_path, "-o", "table", "info")
    assert table.returncode == 0 and "guest-ping" in table.stdout, table.stderr
