"""fsfreeze on the real lab guest: real freezes, real blocked writers, real signals.

Every guest qgactl freezes here is thawed by the test itself when it ends (the ``side``
fixture's teardown thaws through BOTH of the guest's agents: each qemu-ga keeps its own frozen
flag), and frozen/thawed is checked through libvirt-python or a raw socket, never through
qgactl. The writer that proves a freeze is real runs through the guest's other agent: the
freezing agent refuses guest-exec while frozen.

Sides (how qgactl reaches the guest):
    libvirt    lab_domain through libvirtd (the .0 channel), --transport libvirt
    dedicated  lab_domain's dedicated .1 socket, --socket
    plain      the plain-QEMU guest's .0 socket, --socket
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import libvirt
import libvirt_qemu
import pytest
from fakeagent import FakeAgent, Peer

from lab import lab
from qgactl import watchdog

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

ROOT = Path(__file__).resolve().parents[2]
THAW_SECONDS = 3.0  # "thawed within seconds" after any failure qgactl or its watchdog covers
timings: dict[str, float] = {}


# -- reaching the guest without qgactl ---------------------------------------------------------


def libvirt_call(dom: Any, execute: str, arguments: dict[str, Any] | None = None) -> Any:
    request: dict[str, Any] = {"execute": execute}
    if arguments is not None:
        request["arguments"] = arguments
    reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), 30, 0)
    return json.loads(reply)["return"]


def socket_call(path: Path, execute: str, arguments: dict[str, Any] | None = None) -> Any:
    reply = lab.agent_call(path, execute, arguments, timeout=30)
    assert "return" in reply, reply
    return reply["return"]


@dataclass
class Side:
    """How qgactl reaches one agent of a guest, and independent ways to look at that guest."""

    name: str
    qgactl_args: list[str]  # global options + DOMAIN (if any), placed around "fsfreeze"
    call: Callable[..., Any]  # the agent qgactl freezes with (status lives in its own flag)
    other: Callable[..., Any]  # the guest's other agent: not in frozen state, runs writers
    status_shell: str  # a host shell command printing the status through `call`'s agent
    key: str  # the auto-thaw state key qgactl uses for this target
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def fsfreeze(self, qgactl: Any, *args: str, timeout: float = 60) -> Any:
        options, domain = self.split()
        return qgactl(*options, "fsfreeze", *domain, *args, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        options, domain = self.split()
        process = subprocess.Popen(
            [sys.executable, "-m", "qgactl", *options, "fsfreeze", *domain, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.started.append(process)
        return process

    def split(self) -> tuple[list[str], list[str]]:
        if "--socket" in self.qgactl_args:
            return self.qgactl_args, []
        return self.qgactl_args[:-1], self.qgactl_args[-1:]

    def status(self) -> str:
        return str(self.call("guest-fsfreeze-status"))

    def wait_thawed(self, seconds: float) -> float:
        """Seconds until the guest reads thawed; fails after ``seconds``."""
        started = time.monotonic()
        while self.status() != "thawed":
            assert time.monotonic() - started < seconds, f"{self.name}: still frozen"
            time.sleep(0.05)
        return time.monotonic() - started


def _socket_status_shell(path: Path) -> str:
    code = f"from lab import lab; print(lab.agent_call({str(path)!r}, 'guest-fsfreeze-status'))"
    return f'cd {ROOT} && {sys.executable} -c "{code}"'


def _socket_key(path: Path) -> str:
    real = os.path.realpath(path)
    return "socket-" + hashlib.sha256(real.encode()).hexdigest()[:16]


def _make_side(name: str, request: pytest.FixtureRequest) -> Side:
    if name == "plain":
        guest = request.getfixturevalue("plain_qemu_guest")
        main, other = guest.socket_path, guest.dedicated_socket
        return Side(
            name,
            ["--socket", str(main)],
            lambda *a: socket_call(main, *a),
            lambda *a: socket_call(other, *a),
            _socket_status_shell(main),
            _socket_key(main),
        )
    domain = request.getfixturevalue("lab_domain")
    assert domain.startswith("qgactl-test-")  # a lab guest, never the host
    dom = request.getfixturevalue("conn").lookupByName(domain)
    dedicated = domain.dedicated_socket
    via_libvirt = (lambda *a: libvirt_call(dom, *a), f"uuid-{dom.UUIDString()}")
    via_socket = (lambda *a: socket_call(dedicated, *a), _socket_key(dedicated))
    if name == "libvirt":
        shell = (
            f"virsh -c {domain.uri} qemu-agent-command {domain} "
            """'{"execute":"guest-fsfreeze-status"}'"""
        )
        return Side(
            name,
            ["--transport", "libvirt", str(domain)],
            via_libvirt[0],
            via_socket[0],
            shell,
            via_libvirt[1],
        )
    return Side(
        name,
        ["--socket", str(dedicated)],
        via_socket[0],
        via_libvirt[0],
        _socket_status_shell(dedicated),
        via_socket[1],
    )


def _thaw_everything(side: Side) -> None:
    """The suite must never leave a guest frozen: thaw through both agents, kill leftovers."""
    for process in side.started:
        if process.poll() is None:
            process.kill()
        process.communicate()
    watchdog.cancel(side.key)
    for call in (side.call, side.other):
        for _attempt in range(3):
            try:
                call("guest-fsfreeze-thaw")
                break
            except (TimeoutError, libvirt.libvirtError):
                time.sleep(1)
    assert side.status() == "thawed"
    assert side.other("guest-fsfreeze-status") == "thawed"


@pytest.fixture
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    the_side = _make_side(request.param, request)
    assert the_side.status() == "thawed", "a previous test left the guest frozen"
    try:
        yield the_side
    finally:
        _thaw_everything(the_side)


ALL_SIDES = pytest.mark.parametrize("side", ["libvirt", "dedicated", "plain"], indirect=True)
LIBVIRT_AND_SOCKET = pytest.mark.parametrize("side", ["libvirt", "dedicated"], indirect=True)
LIBVIRT = pytest.mark.parametrize("side", ["libvirt"], indirect=True)


# -- a writer in the guest ---------------------------------------------------------------------


def start_writer(side: Side, name: str) -> int:
    """A guest process that creates a file on /mnt/data and syncs: it blocks while frozen."""
    script = f"echo x > /mnt/data/{name} && sync"
    return int(side.other("guest-exec", {"path": "/bin/sh", "arg": ["-c", script]})["pid"])


def writer_exited(side: Side, pid: int) -> bool:
    status = side.other("guest-exec-status", {"pid": pid})
    if status["exited"]:
        assert status["exitcode"] == 0, status
    return bool(status["exited"])


def wait_writer(side: Side, pid: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not writer_exited(side, pid):
        assert time.monotonic() < deadline, "the guest writer never finished"
        time.sleep(0.1)


def wait_for_file(path: Path, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().strip()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is gone too


# -- status, freeze, thaw ----------------------------------------------------------------------


@ALL_SIDES
def test_freeze_blocks_a_guest_writer_until_thaw(qgactl, side: Side) -> None:
    status = side.fsfreeze(qgactl)
    assert status.code == 0, status.stderr
    assert status.json() == {
        "target": status.json()["target"],
        "status": "thawed",
        "auto_thaw": None,
    }

    frozen = side.fsfreeze(qgactl, "--freeze")
    assert frozen.code == 0, frozen.stderr
    assert frozen.json()["frozen"] == 1 and frozen.json()["status"] == "frozen"
    assert "stays frozen until" in frozen.stderr and "--thaw" in frozen.stderr
    assert side.status() == "frozen"
    assert side.fsfreeze(qgactl).json()["status"] == "frozen"

    pid = start_writer(side, f"frozen-{side.name}")
    time.sleep(1.5)
    assert not writer_exited(side, pid), "a write went through on a frozen filesystem"

    thawed = side.fsfreeze(qgactl, "--thaw")
    assert thawed.code == 0, thawed.stderr
    assert thawed.json()["thawed"] == 1
    assert side.status() == "thawed"
    wait_writer(side, pid, seconds=10)
    timings[f"freeze ({side.name})"] = frozen.seconds
    timings[f"thaw ({side.name})"] = thawed.seconds


@LIBVIRT_AND_SOCKET
def test_freezing_a_frozen_guest_says_already_frozen_and_leaves_it(qgactl, side: Side) -> None:
    side.call("guest-fsfreeze-freeze")  # someone else's freeze
    again = side.fsfreeze(qgactl, "--freeze")
    assert again.code == 6
    assert "already frozen" in again.stderr and "disabled" not in again.stderr
    run = side.fsfreeze(qgactl, "--run", "true")
    assert run.code == 6 and "already frozen" in run.stderr
    time.sleep(0.5)  # a guard watchdog, had one been left behind, would thaw by now
    assert side.status() == "frozen"  # not ours to thaw


@LIBVIRT
def test_freeze_only_some_mountpoints(qgactl, side: Side) -> None:
    frozen = side.fsfreeze(qgactl, "--freeze", "--mountpoint", "/mnt/data")
    assert frozen.code == 0 and frozen.json()["frozen"] == 1
    assert side.status() == "frozen"
    assert side.fsfreeze(qgactl, "--thaw").json()["thawed"] == 1

    nothing = side.fsfreeze(qgactl, "--freeze", "--mountpoint", "/no/such/mount")
    assert nothing.code == 0, nothing.stderr
    assert nothing.json()["frozen"] == 0 and nothing.json()["status"] == "thawed"
    assert "nothing was frozen" in nothing.stderr
    assert side.status() == "thawed"


# -- --run -------------------------------------------------------------------------------------


@LIBVIRT_AND_SOCKET
def test_run_sees_a_frozen_guest_and_thaws_after(qgactl, side: Side, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    run = side.fsfreeze(qgactl, "--run", f"{side.status_shell} > {seen}")
    assert run.code == 0, run.stderr
    assert "frozen" in seen.read_text()  # CMD ran while the guest was frozen
    assert side.status() == "thawed"
    assert run.stdout == ""  # stdout belongs to CMD
    assert "froze 1 filesystem" in run.stderr and "thawed 1 filesystem" in run.stderr
    timings[f"--run true, whole command ({side.name})"] = run.seconds


@LIBVIRT
def test_run_passes_a_failing_status_through(qgactl, side: Side) -> None:
    run = side.fsfreeze(qgactl, "--run", "echo out; exit 7")
    assert run.code == 7, run.stderr
    assert run.stdout == "out\n"
    assert side.status() == "thawed"


@LIBVIRT
def test_run_that_hangs_is_killed_with_its_group_then_thawed(
    qgactl, side: Side, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    command = f"sleep 60 & echo $$ $! > {pids}; wait"
    run = side.fsfreeze(qgactl, "--run", command, "--timeout-run", "1.5")
    assert run.code == 124, run.stderr
    assert side.status() == "thawed"
    assert run.seconds < 1.5 + THAW_SECONDS + 2, run.seconds
    shell, background = map(int, pids.read_text().split())
    assert gone(shell) and gone(background)  # the whole group, not just the shell


@LIBVIRT
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_run_child_killed_by_a_signal(side: Side, tmp_path: Path, signum: int) -> None:
    pidfile = tmp_path / "pid"
    process = side.popen("--run", f"echo $$ > {pidfile}; exec sleep 60")
    child = int(wait_for_file(pidfile))  # written after the freeze
    assert side.status() == "frozen"
    sent = time.monotonic()
    os.kill(child, signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, stderr
    side.wait_thawed(THAW_SECONDS)
    timings[f"CMD got {signal.Signals(signum).name} -> thawed"] = time.monotonic() - sent


@LIBVIRT
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_run_qgactl_interrupted(side: Side, tmp_path: Path, signum: int) -> None:
    pidfile = tmp_path / "pid"
    process = side.popen("--run", f"echo $$ > {pidfile}; exec sleep 60")
    child = int(wait_for_file(pidfile))
    assert side.status() == "frozen"
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, stderr
    assert side.status() == "thawed"
    seconds = time.monotonic() - sent
    assert seconds < THAW_SECONDS + 2  # KILL_GRACE at most, then the thaw
    timings[f"qgactl got {signal.Signals(signum).name} -> exited thawed"] = seconds
    assert gone(child)  # CMD was stopped first
    assert b"Traceback" not in stderr


@LIBVIRT_AND_SOCKET
def test_run_qgactl_sigkilled_the_guard_thaws(side: Side, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    process = side.popen("--run", f"echo $$ > {pidfile}; exec sleep 60")
    child = int(wait_for_file(pidfile))
    try:
        assert side.status() == "frozen"
        sent = time.monotonic()
        process.kill()
        process.wait()
        side.wait_thawed(THAW_SECONDS)
        timings[f"SIGKILL of qgactl --run -> thawed ({side.name})"] = time.monotonic() - sent
    finally:
        os.kill(child, signal.SIGKILL)  # CMD outlives a SIGKILLed qgactl (documented)


# -- --auto-thaw -------------------------------------------------------------------------------


@LIBVIRT_AND_SOCKET
def test_auto_thaw_alone_thaws_after_its_seconds(qgactl, side: Side) -> None:
    started = time.monotonic()
    frozen = side.fsfreeze(qgactl, "--freeze", "--auto-thaw", "5")
    assert frozen.code == 0, frozen.stderr
    assert frozen.seconds < 3  # not on a terminal: no countdown, qgactl is gone at once
    pid = frozen.json()["auto_thaw"]["pid"]
    assert side.status() == "frozen"
    assert watchdog.state_file(side.key).exists()
    assert side.fsfreeze(qgactl).json()["auto_thaw"]["pid"] == pid

    time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
    assert side.status() == "frozen"  # not early
    side.wait_thawed(8 - (time.monotonic() - started))
    timings[f"--auto-thaw 5: thawed after ({side.name})"] = time.monotonic() - started
    deadline = time.monotonic() + 5
    while not gone(pid):
        assert time.monotonic() < deadline, "the watchdog did not exit after thawing"
        time.sleep(0.05)
    assert not watchdog.state_file(side.key).exists()


@LIBVIRT
def test_auto_thaw_on_a_terminal_counts_down_until_thawed(side: Side) -> None:
    """stderr on a terminal: qgactl stays, shows a live countdown, reports the thaw."""
    main_end, tty_end = pty.openpty()
    options, domain = side.split()
    argv = ["fsfreeze", *domain, "--freeze", "--auto-thaw", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "qgactl", *options, *argv],
        stdout=subprocess.PIPE,
        stderr=tty_end,
    )
    side.started.append(process)
    os.close(tty_end)
    screen = b""
    while True:
        try:
            chunk = os.read(main_end, 65536)
        except OSError:  # EIO: the terminal's last writer has gone
            break
        if not chunk:
            break
        screen += chunk
    os.close(main_end)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0, screen
    assert json.loads(stdout)["frozen"] == 1
    text = screen.decode(errors="replace")
    assert "auto-thaw in 2 s" in text or "auto-thaw in 1 s" in text
    assert "watchdog thawed it" in text
    assert side.status() == "thawed"


@LIBVIRT
def test_thaw_cancels_the_auto_thaw(qgactl, side: Side) -> None:
    frozen = side.fsfreeze(qgactl, "--freeze", "--auto-thaw", "60")
    pid = frozen.json()["auto_thaw"]["pid"]
    assert not gone(pid)
    thawed = side.fsfreeze(qgactl, "--thaw")
    assert thawed.code == 0, thawed.stderr
    assert thawed.json()["auto_thaw_cancelled"] == pid
    assert gone(pid)
    assert not watchdog.state_file(side.key).exists()
    assert side.status() == "thawed"


@LIBVIRT
def test_a_new_freeze_replaces_a_stale_auto_thaw(qgactl, side: Side) -> None:
    """Thawed behind qgactl's back, then frozen again: the old watchdog must not thaw the new
    freeze early."""
    old = side.fsfreeze(qgactl, "--freeze", "--auto-thaw", "60").json()["auto_thaw"]["pid"]
    side.call("guest-fsfreeze-thaw")
    new = side.fsfreeze(qgactl, "--freeze", "--auto-thaw", "60").json()["auto_thaw"]["pid"]
    assert gone(old) and not gone(new)


# -- a freeze that fails half way (a scripted agent: a real one can't be made to) --------------


class FreezeNeverAnswers:
    """First client: status thawed, then the freeze gets no answer (as a slow or stuck
    freeze); later clients are answered and every command is recorded."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.clients = 0

    def __call__(self, peer: Peer) -> None:
        self.clients += 1
        if not peer.sync():
            return
        while (request := peer.read_request()) is not None:
            command = request["execute"]
            self.commands.append(command)
            if command == "guest-fsfreeze-freeze":
                peer.wait_gone()
                return
            answers = {"guest-fsfreeze-status": '"thawed"', "guest-fsfreeze-thaw": "1"}
            peer.send(b'{"return": %s}\n' % answers[command].encode())


def test_freeze_that_times_out_is_thawed_anyway(qgactl) -> None:
    agent = FreezeNeverAnswers()
    with FakeAgent(agent) as fake:
        run = qgactl("--socket", fake.path, "-t", "1", "fsfreeze", "--freeze")
    assert run.code == 5, run.stderr  # the timeout's own exit code
    assert "thawing in case it got half way" in run.stderr
    assert agent.commands == [
        "guest-fsfreeze-status",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
    ]


def test_run_whose_freeze_times_out_thaws_and_never_runs_cmd(qgactl, tmp_path: Path) -> None:
    agent = FreezeNeverAnswers()
    marker = tmp_path / "ran"
    with FakeAgent(agent) as fake:
        run = qgactl("--socket", fake.path, "-t", "1", "fsfreeze", "--run", f"touch {marker}")
    assert run.code == 125, run.stderr
    assert not marker.exists()
    assert agent.commands[-1] == "guest-fsfreeze-thaw"
    assert "Traceback" not in run.stderr


def test_zz_report_timings() -> None:
    """Not a check: prints what the tests above measured (run with -s to see it)."""
    for name, seconds in timings.items():
        print(f"timing: {name}: {seconds:.3f} s")
