"""Lanes (qgactl/lane.py) into the real Debian 12 guest, through the public API (Guest.lane).

What a lane did in the guest, and that nothing of it is left, is checked around qgactl: raw
agent calls (guestside.py) and the domain's live XML (virsh), never by asking the lane.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

import qgactl
from lab import lab
from qgactl.lane import Lane as Engine
from tests.vm.guestside import Target, libvirt_raw

PORT_PREFIX = "org.qgactl.lane."
# A regular expression for a lane port's name that does not match its own text: the shell that
# greps /proc for it must not find itself.
PORT_RE = "org[.]qgactl[.]lane[.][0-9a-f]"


@pytest.fixture
def side(conn, debian_domain) -> Target:
    return Target(debian_domain, [], [debian_domain], libvirt_raw(conn.lookupByName(debian_domain)))


@pytest.fixture
def guest(debian_domain: lab.LabDomain) -> Iterator[qgactl.Guest]:
    """The Debian guest with no lane before the test and none after it."""
    Engine(debian_domain, debian_domain.uri, persist=0, timeout=10).stop()
    with qgactl.connect(debian_domain, uri=debian_domain.uri, timeout=10) as guest:
        yield guest
    Engine(debian_domain, debian_domain.uri, persist=0, timeout=10).stop()


def _ports(domain: lab.LabDomain) -> list[str]:
    """The lane ports in the domain's live XML (virsh, not qgactl)."""
    xml = subprocess.run(
        ["virsh", "-c", domain.uri, "dumpxml", domain], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in xml.splitlines() if "<target" in line and PORT_PREFIX in line]


def _guest_lane_processes(side: Target) -> list[str]:
    """Guest processes whose command line names a lane port (the guest side and its forks)."""
    status, out = side.sh(f"grep -l '{PORT_RE}' /proc/[0-9]*/cmdline 2>/dev/null; true", 30)
    assert status == 0
    return [p for p in out.decode().split() if not p.startswith("/proc/self")]


def _master_pid(engine: Engine) -> int:
    out = subprocess.run(
        ["pgrep", "-f", f"qgactl.lane .* {engine.path} "], capture_output=True, text=True
    ).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def _wait_until(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def test_files_byte_exact_both_ways_and_nothing_left_beside(guest, side, tmp_path):
    lane = guest.lane(persist=30)
    data = os.urandom(20 * 1024 * 1024)
    lane.write_file("/tmp/lane-in.bin", data, mode=0o640)
    _, out = side.sh("sha256sum /tmp/lane-in.bin; stat -c %a /tmp/lane-in.bin; "
                     "ls -A /tmp | grep -c qgactl-lane", 120)  # fmt: skip
    assert out.decode().split() == [
        hashlib.sha256(data).hexdigest(),
        "/tmp/lane-in.bin",
        "640",
        "0",
    ]

    side.sh(
        "head -c 3000000 /dev/urandom > /tmp/lane-out.bin; printf '\\0\\377' >> /tmp/lane-out.bin"
    )
    _, out = side.sh("sha256sum /tmp/lane-out.bin", 60)
    back = lane.copy_out("/tmp/lane-out.bin", tmp_path)
    assert back == tmp_path / "lane-out.bin"
    assert hashlib.sha256(back.read_bytes()).hexdigest() == out.split()[0].decode()
    assert lane.read_file("/tmp/lane-in.bin") == data

    with pytest.raises(qgactl.AgentCommandError, match="No such file"):
        lane.copy_out("/tmp/no-such-file", tmp_path / "never")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lane-out.bin"]  # no partial file
    side.sh("rm -f /tmp/lane-in.bin /tmp/lane-out.bin")


def test_commands_stdin_env_status_and_stderr(guest):
    lane = guest.lane(persist=30)
    stdin = os.urandom(1_000_000)
    done = lane.exec("sha256sum; echo $GREETING ~ >&2; exit 7", stdin=stdin,
                     env={"GREETING": "hello"})  # fmt: skip
    assert done.status == 7
    assert done.stdout.split()[0].decode() == hashlib.sha256(stdin).hexdigest()
    assert done.stderr == b"hello /root\n"  # HOME from passwd, as a login has it
    missing = lane.exec(["/no/such/program"])
    assert (missing.status, missing.stderr) == (
        127,
        b"/no/such/program: No such file or directory\n",
    )


def test_a_python_program_runs_in_a_fork_of_the_warm_interpreter(guest, side):
    lane = guest.lane(persist=30)
    program = b"""
import os, sys, time
print(os.getpid(), os.getppid(), sys.argv, __name__)
sys.stdout.flush()
open('/tmp/lane-fork-pid', 'w').write(str(os.getpid()))
time.sleep(3)
sys.exit(3)
"""
    result: list[qgactl.Completed] = []
    runner = threading.Thread(
        target=lambda: result.append(lane.exec(["/usr/bin/python3"], stdin=program, python=True))
    )
    runner.start()
    assert _wait_until(lambda: side.sh("test -s /tmp/lane-fork-pid")[0] == 0, 30)
    # Seen from the guest, around qgactl: the program runs in a process whose command line is
    # the lane's (a fork of it), not a new /usr/bin/python3 reading stdin.
    _, cmdline = side.sh("tr '\\0' ' ' < /proc/$(cat /tmp/lane-fork-pid)/cmdline")
    assert b"python3 -c" in cmdline and PORT_PREFIX.encode() in cmdline
    runner.join(60)
    [done] = result
    _pid, _parent, argv, name = done.stdout.decode().split(maxsplit=3)
    assert (done.status, argv, name.strip()) == (3, "['']", "__main__")
    side.sh("rm -f /tmp/lane-fork-pid")

    other = lane.exec(["/bin/sh"], stdin=b"echo not python", python=True)  # not the lane's python
    assert (other.status, other.stdout) == (0, b"not python\n")


def test_idle_lane_unplugs_its_port_and_leaves_no_guest_process(guest, side, debian_domain):
    lane = guest.lane(persist=2)
    assert len(_ports(debian_domain)) == 1
    assert _guest_lane_processes(side)
    assert lane.exec("true").status == 0
    assert _wait_until(lambda: not _ports(debian_domain), 60), _ports(debian_domain)
    assert _wait_until(lambda: not _guest_lane_processes(side), 30)


def test_a_killed_master_is_recovered_from(guest, side, debian_domain):
    lane = guest.lane(persist=30)
    engine = Engine(debian_domain, debian_domain.uri, persist=30, timeout=10)
    os.kill(_master_pid(engine), signal.SIGKILL)  # ours: the lane this test started
    # The guard unplugs its port; the guest side reads the hangup and goes.
    assert _wait_until(lambda: not _ports(debian_domain), 60), _ports(debian_domain)
    assert _wait_until(lambda: not _guest_lane_processes(side), 30)
    assert lane.exec("echo back").stdout == b"back\n"  # a new master
    assert len(_ports(debian_domain)) == 1


def test_a_lost_guest_side_is_lane_lost_not_a_hang_then_a_new_lane(guest, side):
    lane = guest.lane(persist=30)
    side.sh(f"(sleep 3; kill -9 $(grep -l '{PORT_RE}' /proc/[0-9]*/cmdline | cut -d/ -f3)) "
            ">/dev/null 2>&1 &")  # fmt: skip
    started = time.monotonic()
    with pytest.raises(qgactl.LaneLost):
        lane.exec("exec sleep 301")
    assert time.monotonic() - started < 120
    side.sh("pkill -f 'sleep 301'; true")  # the guest side was killed: its command stays
    assert lane.exec("echo again").stdout == b"again\n"


def test_requests_at_once_from_threads_and_a_missing_python3_is_refused(guest, lab_domain):
    lane = guest.lane(persist=30)
    outcomes: dict[int, bytes] = {}

    def work(index: int) -> None:
        data = os.urandom(300_000 + index)
        outcomes[index] = lane.exec("sleep 1; sha256sum", stdin=data).stdout[:64]
        assert outcomes[index].decode() == hashlib.sha256(data).hexdigest()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(outcomes) == 6

    with qgactl.connect(lab_domain, uri=lab_domain.uri, timeout=10) as busybox:
        with pytest.raises(qgactl.LaneRefused, match="no python3"):
            busybox.lane(persist=5)
        assert not _ports(lab_domain)
