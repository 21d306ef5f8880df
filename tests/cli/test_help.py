"""`qgactl --help`: the commands grouped by section, each once, each summary whole, and the
registry's summaries (what --help shows without importing the commands) equal to the commands'
own docstrings."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from qgactl.cli import cli
from qgactl.commands import COMMANDS, SECTION_NOTES, SECTIONS


def _help(columns: int) -> str:
    env = {**os.environ, "COLUMNS": str(columns)}
    result = subprocess.run(
        [sys.executable, "-m", "qgactl", "--help"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""
    return result.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_help_groups_every_command_once_with_its_whole_summary(columns):
    text = _help(columns)
    assert max(map(len, text.splitlines())) <= columns
    titles = [f"{section}:" for section in SECTIONS]
    lines = text.splitlines()
    starts = [lines.index(title) for title in titles]  # each section, in order
    assert starts == sorted(starts)
    listed = []
    for section, start, end in zip(SECTIONS, starts, [*starts[1:], len(lines)]):
        body = lines[start + 1 : end]
        names = [line.split()[0] for line in body if line.startswith("  ") and line[2] != " "]
        section_commands = [name for name, entry in COMMANDS.items() if entry[0] == section]
        if section in SECTION_NOTES:  # a note's first word is not a command
            names = names[: len(section_commands)]
        assert names == section_commands
        listed += names
        joined = " ".join(" ".join(body).split())  # wrapped lines joined back
        for name in section_commands:
            assert f"{name} {COMMANDS[name][2]}" in joined  # whole: no "...", nothing cut
        assert "..." not in joined.replace("DOMAIN...", "")
    assert sorted(listed) == sorted(COMMANDS)


def test_registry_summary_is_the_commands_first_docstring_line():
    context = click.Context(cli)
    for name, (section, _, summary) in COMMANDS.items():
        command = cli.get_command(context, name)
        first_paragraph = (command.help or "").split("\n\n")[0]
        assert first_paragraph == summary, f"{name}: its docstring's first line changed"
        assert section in SECTIONS


def test_help_imports_no_command_module():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qgactl", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()[1:]}
    assert "qgactl.commands" in imported
    assert not {name for name in imported if name.startswith("qgactl.commands.")}
