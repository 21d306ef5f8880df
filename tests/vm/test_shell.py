"""qgactl shell on a real terminal: tmux runs it against the Debian 12 lab guest.

Each test starts a tmux server of its own, whose pane runs ``stty -a`` (saved), qgactl shell,
then prints qgactl's exit status and ``stty -a`` again: what the pane shows is what a user
sees. What the session did in the guest is checked with raw agent calls (guestside.py) and the
domain's live XML (virsh), never by asking qgactl.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import lab
from tests.vm.guestside import libvirt_raw

ROOT = Path(__file__).resolve().parents[2]


class Pane:
    """A tmux server with one 100x30 window running ``qgactl shell ARGS``."""

    def __init__(self, workdir: Path, uri: str, args: list[str]) -> None:
        self.socket = f"qgactl-test-{os.getpid()}-{time.monotonic_ns()}"
        self.workdir = workdir
        qgactl = shlex.join([sys.executable, "-m", "qgactl", "-c", uri, "shell", *args])
        qgactl = f"PYTHONFAULTHANDLER=1 {qgactl}"  # post_mortem's stacks
        script = (
            f"cd {shlex.quote(str(ROOT))}; stty -a > {workdir}/before; "
            f"{qgactl}; echo EXIT=$?; stty -a > {workdir}/after; sleep 600"
        )
        self.tmux("new-session", "-d", "-x", "100", "-y", "30", "sh", "-c", script)

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-S", "-200")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on the screen:\n{self.post_mortem()}")

    def post_mortem(self) -> str:
        """The screen after qgactl (if still running) dumped its threads' stacks: the pane
        runs it with PYTHONFAULTHANDLER, so SIGABRT prints where each thread waits."""
        with contextlib.suppress(AssertionError, ProcessLookupError):
            os.kill(self.qgactl_pid(), signal.SIGABRT)
            time.sleep(2)
        return self.screen()

    def qgactl_pid(self) -> int:
        """The qgactl process (the pane's sh's child)."""
        shell_pid = self.tmux("list-panes", "-F", "#{pane_pid}").strip()
        out = subprocess.run(
            ["pgrep", "-P", shell_pid, "-f", "qgactl"], capture_output=True, text=True
        ).stdout.split()
        assert len(out) == 1, out
        return int(out[0])

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def pane_for(tmp_path: Path) -> Iterator[Any]:
    panes: list[Pane] = []

    def start(domain: lab.LabDomain, *args: str) -> Pane:
        pane = Pane(tmp_path, domain.uri, [domain, *args])
        panes.append(pane)
        return pane

    yield start
    for pane in panes:
        pane.kill()


def guest_sh(conn: Any, domain: str, script: str) -> str:
    """Run a script in the guest through a raw guest-exec (not qgactl): its stdout."""
    raw = libvirt_raw(conn.lookupByName(domain))
    pid = raw("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})
    deadline = time.monotonic() + 30
    while not (status := raw("guest-exec-status", {"pid": pid["pid"]}))["exited"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return base64.b64decode(status.get("out-data", "")).decode()


def session_ports(domain: lab.LabDomain) -> list[str]:
    """The live XML's session ports (their <target> lines)."""
    lines = domain.live_xml().splitlines()
    return [line for line in lines if "<target" in line and "org.qgactl.shell." in line]


def wait_until(predicate: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_shell_pty_resize_and_exit_status(
    debian_domain: lab.LabDomain, pane_for: Any, tmp_path: Path
) -> None:
    pane = pane_for(debian_domain)
    pane.wait_for("root@debian12:~#")
    pane.keys("echo hello-$((6*7)); tty; stty size", "Enter")
    pane.wait_for("hello-42")
    pane.wait_for("/dev/pts/")
    pane.wait_for("30 100")
    pane.tmux("resize-window", "-x", "120", "-y", "40")
    time.sleep(0.5)
    pane.keys("clear; stty size", "Enter")
    pane.wait_for("40 120")
    pane.keys("exit 3", "Enter")
    pane.wait_for("EXIT=3")
    assert wait_until(lambda: (tmp_path / "after").exists() and (tmp_path / "after").read_text())
    # Every setting as before; only the first line (the size, resized above) differs.
    before = (tmp_path / "before").read_text().splitlines()
    after = (tmp_path / "after").read_text().splitlines()
    assert after[0] == before[0].replace("rows 30; columns 100", "rows 40; columns 120")
    assert after[1:] == before[1:]
    assert session_ports(debian_domain) == []


def test_vi_ctrl_c_and_ctrl_bracket(debian_domain: lab.LabDomain, pane_for: Any) -> None:
    pane = pane_for(debian_domain, "--user", "qgauser", "--cwd", "/tmp")
    pane.wait_for("qgauser@debian12:/tmp$")
    pane.keys("vi qgactl-vi-test", "Enter")
    pane.wait_for('"qgactl-vi-test"')
    assert "qgauser@debian12" not in pane.screen().splitlines()[-1]  # vi has the screen
    pane.keys("Escape", ":q!", "Enter")
    pane.keys("clear; sleep 1000", "Enter")
    time.sleep(1)
    pane.keys("C-c")
    pane.keys("echo status=$?", "Enter")
    pane.wait_for("status=130")
    pane.keys("C-]")
    screen = pane.wait_for("EXIT=0")
    assert "disconnected (Ctrl-])" in screen
    assert wait_until(lambda: session_ports(debian_domain) == [])


def test_kill_9_leaves_nothing_in_the_guest(
    conn: Any, debian_domain: lab.LabDomain, pane_for: Any
) -> None:
    pane = pane_for(debian_domain)
    pane.wait_for("root@debian12:~#")
    pane.keys("sleep 4321 & nohup sleep 4322 >/dev/null 2>&1 & echo started", "Enter")
    pane.wait_for("started")
    running = guest_sh(conn, debian_domain, "ps -eo args")
    assert "sleep 4321" in running and "sleep 4322" in running
    assert len(session_ports(debian_domain)) == 1
    os.kill(pane.qgactl_pid(), 9)
    pane.wait_for("EXIT=137")

    def guest_clean() -> bool:
        left = guest_sh(conn, debian_domain, "ps -eo args")
        return "sleep 432" not in left and "qgactl" not in left

    assert wait_until(guest_clean, timeout=10), guest_sh(conn, debian_domain, "ps -eo args")
    assert wait_until(lambda: session_ports(debian_domain) == [], timeout=15)


def test_busybox_guest_says_python3_is_missing(lab_domain: lab.LabDomain, pane_for: Any) -> None:
    pane = pane_for(lab_domain)
    screen = pane.wait_for("EXIT=")
    assert "EXIT=125" in screen
    assert "the guest has no python3" in screen
    assert session_ports(lab_domain) == []


def test_no_terminal_points_to_exec() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qgactl", "shell", "some-domain"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "needs a terminal" in lines[0] and "qgactl exec some-domain -- CMD" in lines[0]
