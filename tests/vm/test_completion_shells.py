"""<TAB> in real interactive bash, zsh and fish (under tmux), with the committed scripts loaded
the way an installed copy is: bash sources it, zsh autoloads _qgactl from $fpath, fish autoloads
qgactl.fish from $fish_complete_path. Then what the agent-backed completions offer for the lab
guest (`raw`'s commands from guest-info; running domains vs every domain).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from shellcomplete import bash_complete

ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = ROOT / "completions"
PATH = f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin"

SHELLS = {
    "bash": ("bash --norc --noprofile -i", ["PS1='$ '", f"source {COMPLETIONS}/qgactl.bash"]),
    "zsh": (
        "zsh -f -i",
        ["PROMPT='$ '", f"fpath=({COMPLETIONS} $fpath)", "autoload -Uz compinit", "compinit -u -D"],
    ),
    "fish": (
        "fish --no-config -i",
        ["function fish_prompt; echo '$ '; end", f"set fish_complete_path {COMPLETIONS}"],
    ),
}


class Pane:
    """One interactive shell in a detached tmux session: type, press keys, read the screen."""

    def __init__(self, shell: str) -> None:
        command, setup = SHELLS[shell]
        self.name = f"qgactl-test-{os.getpid()}-{shell}"
        env = f"env -i HOME={os.environ.get('HOME', '/root')} TERM=xterm-256color PATH={PATH}"
        self.tmux("new-session", "-d", "-s", self.name, "-x", "200", "-y", "50", f"{env} {command}")
        for line in [*setup, "clear"]:
            self.type(line, "Enter")
        self.wait_for(lambda screen: screen.strip() == "$")

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", *args], capture_output=True, text=True, check=True)
        return result.stdout

    def type(self, text: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)
        if keys:
            self.tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-N", "-t", self.name)  # -N: keep trailing spaces

    def wait_for(self, ready, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if ready(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"tmux screen:\n{self.screen()}")

    def tab_until(self, ready, presses: int = 4) -> str:
        """Press <TAB> until the screen is ``ready``: shells list candidates on the 1st to 3rd
        press, and a lookup that missed its deadline under load is asked again."""
        for _ in range(presses - 1):
            self.type("", "Tab")
            try:
                return self.wait_for(ready, timeout=4)
            except AssertionError:
                continue
        self.type("", "Tab")
        return self.wait_for(ready)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def pane(request):
    shell = request.param
    assert shutil.which(shell) and shutil.which("tmux"), f"{shell} and tmux: make deps"
    pane = Pane(shell)
    yield pane
    pane.close()


def line_is(expected: str):
    return lambda screen: f"$ {expected}" in screen.splitlines()


@pytest.mark.parametrize("pane", sorted(SHELLS), indirect=True)
def test_tab_completes_commands_and_domains(pane, lab_domain):
    pane.type("qgactl pi", "Tab")
    pane.wait_for(line_is("qgactl ping "))

    pane.type("", "C-u")
    pane.type("qgactl ping ")
    pane.tab_until(lambda screen: lab_domain in screen)  # listed among the running domains

    pane.type("", "C-u")
    pane.type(f"qgactl -c {lab_domain.uri} ping {lab_domain[:-1]}")
    pane.tab_until(line_is(f"qgactl -c {lab_domain.uri} ping {lab_domain} "))


def complete(qgactl, line):
    return [value for _, value in bash_complete(qgactl, line)]


def test_raw_offers_the_guests_enabled_commands(qgactl, lab_domain):
    # guest-get-devices is Windows-only: disabled in guest-info, present in the built-in list
    for transport in ("libvirt", "socket"):
        line = f"qgactl --transport {transport} raw {lab_domain} guest-get-d"
        assert complete(qgactl, line) == ["guest-get-disks", "guest-get-diskstats"]
    # libvirt refuses guest-sync*: not offered through it
    assert complete(qgactl, f"qgactl --transport libvirt raw {lab_domain} guest-sync") == []
    line = f"qgactl --transport socket raw {lab_domain} guest-sync"
    assert complete(qgactl, line) == ["guest-sync", "guest-sync-delimited"]


def test_agent_commands_offer_running_domains_doctor_every_domain(qgactl, lab_domain, domain_off):
    running = complete(qgactl, "qgactl ping qgactl-test-")
    assert lab_domain in running and domain_off not in running
    every = complete(qgactl, "qgactl doctor qgactl-test-")
    assert lab_domain in every and domain_off in every
