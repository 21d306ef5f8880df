"""The committed completion scripts are what the Click app generates, and they work in the shells.

A stale script fails here: regenerate with `make completions`. The shells run the committed
scripts through their completion entry points (bash: the completion function with COMP_LINE;
fish: `complete -C`) against libvirt's test driver; tests/vm/test_completion_shells.py presses
<TAB> in real interactive shells.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from qgactl.cli import cli
from qgactl.completion_scripts import FILE_NAMES, script

ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = ROOT / "completions"
TEST_URI = "test:///default"


@pytest.mark.parametrize("shell", sorted(FILE_NAMES))
def test_committed_script_is_fresh(shell):
    committed = (COMPLETIONS / FILE_NAMES[shell]).read_text()
    assert committed == script(shell, cli), "stale completion script: run `make completions`"


@pytest.mark.parametrize("shell", sorted(FILE_NAMES))
def test_completion_command_prints_the_script(qgactl, shell):
    run = qgactl("completion", shell)
    assert run.code == 0, run.stderr
    assert run.stdout == (COMPLETIONS / FILE_NAMES[shell]).read_text()


def shell_env():
    return {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}


def bash_complete(line):
    """COMPREPLY of the committed bash script for ``line``, the cursor at its end."""
    program = f"""
        source {COMPLETIONS / "qgactl.bash"}
        COMP_LINE=$1 COMP_POINT=${{#1}}
        _qgactl_completion qgactl
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", line],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and result.stderr == "", result
    return [line for line in result.stdout.splitlines() if line]


def fish_complete(line):
    program = f"source {COMPLETIONS / 'qgactl.fish'}; complete -C {line!r}"
    result = subprocess.run(
        ["fish", "--no-config", "-c", program],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and result.stderr == "", result
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


def test_bash_script():
    assert bash_complete("qgactl pi") == ["ping"]
    # bash splits words at ':' and '=': the script hands qgactl the whole line instead
    assert bash_complete(f"qgactl -c {TEST_URI} ping ") == ["test"]
    assert bash_complete(f"qgactl --connect={TEST_URI} ping t") == ["test"]
    assert bash_complete("qgactl --output=js") == ["json"]
    assert bash_complete(f"qgactl -c {TEST_URI} raw test guest-get-t") == [
        "guest-get-time",
        "guest-get-timezone",
    ]


def test_fish_script():
    assert fish_complete("qgactl pi") == ["ping"]
    assert fish_complete(f"qgactl -c {TEST_URI} ping ") == ["test"]
    assert fish_complete("qgactl -o j") == ["json"]
