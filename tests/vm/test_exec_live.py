"""qgactl exec on real guests: live output, --cwd/--user, the wrapper's own refusals, a
frozen guest, and the fleet controls (--max-errors, --output-dir).

What a command did in the guest is checked with a raw agent call (guestside.Target.sh),
never by asking qgactl. No sleep decides a result: a guest command that must still be running
waits for a file that the test makes only after it has seen what it waits for.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.vm import test_exec
from tests.vm.guestside import Target

# The same guests, markers and clean-up check as test_exec.py: a test leaves no spool file, no
# handle and no stray process behind.
BOTH, LIBVIRT, target = test_exec.BOTH, test_exec.LIBVIRT, test_exec.target


def _gate(name: str) -> str:
    """Shell that waits (at most 120 s) until the test makes /tmp/NAME."""
    return (
        f"i=0; until [ -e /tmp/{name} ] || [ $i -ge 1200 ]; do sleep 0.1; i=$((i + 1)); done; "
        f"rm -f /tmp/{name}"
    )


class Arrivals:
    """Reads a pipe in a thread, keeping each chunk with its arrival time."""

    def __init__(self, pipe: Any) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self._pipe = pipe
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := os.read(self._pipe.fileno(), 65536):
            self.chunks.append((time.monotonic(), chunk))

    def wait_for(self, data: bytes, seconds: float = 60) -> float:
        """When ``data`` had arrived in full (the time of the chunk that completed it)."""
        give_up = time.monotonic() + seconds
        while time.monotonic() < give_up:
            received = b""
            for when, chunk in list(self.chunks):
                received += chunk
                if data in received:
                    return when
            time.sleep(0.02)
        raise AssertionError(f"{data!r} never arrived; got {self.data()!r}")

    def data(self) -> bytes:
        self._thread.join(timeout=60)
        return b"".join(chunk for _, chunk in self.chunks)


@BOTH
def test_output_is_seen_while_the_command_still_runs(target: Target) -> None:
    gate = f"gate-{os.getpid()}-{target.name}"
    script = f"echo first; echo warn >&2; {_gate(gate)}; echo second # qgactl-probe"
    process = target.popen("exec", "-s", "--", script)
    stdout, stderr = Arrivals(process.stdout), Arrivals(process.stderr)
    first = stdout.wait_for(b"first\n")
    warned = stderr.wait_for(b"warn\n")
    assert target.sh(f"touch /tmp/{gate}")[0] == 0  # only now can the command end
    assert process.wait(timeout=120) == 0
    ended = time.monotonic()
    assert stdout.data() == b"first\nsecond\n"
    assert stderr.data() == b"warn\n"
    assert first < ended and warned < ended
    assert stdout.chunks[-1][0] > first  # "second" came later, on its own


@BOTH
def test_live_output_of_tens_of_megabytes_is_byte_exact(target: Target) -> None:
    size = 20 * 1024 * 1024 + 13  # not a multiple of any chunk
    made = target.sh(
        f"head -c {size} /dev/urandom >/tmp/live.out && head -c 1500007 /dev/urandom "
        ">/tmp/live.err && sha256sum /tmp/live.out /tmp/live.err"
    )
    assert made[0] == 0
    digests = [line.split()[0].decode() for line in made[1].splitlines()]
    gate = f"gate-{os.getpid()}-big-{target.name}"
    # Output written while the command runs on, so that qgactl streams it, then the rest
    # after qgactl has seen the first part.
    script = (
        f"head -c 1000000 /tmp/live.out; {_gate(gate)}; tail -c +1000001 /tmp/live.out; "
        "cat /tmp/live.err >&2"
    )
    process = target.popen("exec", "-s", "--", script)
    stdout, stderr = Arrivals(process.stdout), Arrivals(process.stderr)
    give_up = time.monotonic() + 60
    while sum(len(c) for _, c in stdout.chunks) < 1000000:
        assert time.monotonic() < give_up, "the first MB never arrived while the command ran"
        time.sleep(0.05)
    assert target.sh(f"touch /tmp/{gate}")[0] == 0
    assert process.wait(timeout=300) == 0
    out, err = stdout.data(), stderr.data()
    target.sh("rm -f /tmp/live.out /tmp/live.err")
    assert len(out) == size and len(err) == 1500007
    assert [hashlib.sha256(out).hexdigest(), hashlib.sha256(err).hexdigest()] == digests


@BOTH
def test_cwd_and_user_are_where_and_who_the_command_runs_as(target: Target) -> None:
    name = f"made-{os.getpid()}-{target.name}"
    for user in ("qgauser", "1000"):
        code, _, stderr = target.run(
            "exec", "--cwd", "/tmp", "--user", user, "--", "touch", f"{name}-{user}"
        )
        assert code == 0, stderr
    made = target.sh(f"stat -c '%u %g' /tmp/{name}-qgauser /tmp/{name}-1000")
    target.sh(f"rm -f /tmp/{name}-*")
    assert made == (0, b"1000 1000\n1000 1000\n")


@BOTH
@pytest.mark.parametrize(
    ("options", "words"),
    [(("--cwd", "/no/such/dir"), ["--cwd", "/no/such/dir"]), (("--user", "nosuch"), ["nosuch"])],
)
def test_a_missing_directory_or_user_is_one_line_and_125(
    target: Target, options: tuple[str, ...], words: list[str]
) -> None:
    code, stdout, stderr = target.run("exec", *options, "--", "sh", "-c", "echo ran # qgactl-probe")
    assert (code, stdout) == (125, b"")
    assert stderr.count(b"\n") == 1 and all(word.encode() in stderr for word in words), stderr


@BOTH
def test_a_missing_or_unexecutable_command_names_it_not_the_wrapper(target: Target) -> None:
    code, _, stderr = target.run("exec", "--", "/no/such")
    assert code == 127
    assert b"/no/such" in stderr and b"/bin/sh" not in stderr
    code, _, stderr = target.run("exec", "--", "nosuchcommand")
    assert code == 127 and b"nosuchcommand" in stderr
    code, _, stderr = target.run("exec", "--", "/etc/os-release")
    assert code == 126 and b"/etc/os-release" in stderr and b"/bin/sh" not in stderr


@LIBVIRT
def test_exec_on_a_frozen_guest_says_frozen_and_how_to_thaw(target: Target) -> None:
    assert target.raw("guest-fsfreeze-status", None) == "thawed"
    try:
        assert target.raw("guest-fsfreeze-freeze", None) >= 1
        code, _, stderr = target.run("exec", "--", "true")
    finally:
        target.raw("guest-fsfreeze-thaw", None)
    assert target.raw("guest-fsfreeze-status", None) == "thawed"
    assert code == 125
    assert b"frozen" in stderr and b"fsfreeze" in stderr and b"--thaw" in stderr, stderr
    assert b"block-rpcs" not in stderr


# -- several targets ---------------------------------------------------------------------------


@pytest.fixture
def fleet(plain_qemu_guest: Any, lab_domain: Any, conn: Any, tmp_path: Path) -> dict[str, Any]:
    """Three --socket targets in order: a guest, a socket that does not exist, another guest;
    a raw way into each guest that is not the socket qgactl uses."""
    from tests.vm.guestside import libvirt_raw, socket_raw

    first = Target("first", [], [], socket_raw(plain_qemu_guest.dedicated_socket))
    second = Target("second", [], [], libvirt_raw(conn.lookupByName(lab_domain)))
    missing = str(tmp_path / "missing.sock")
    sockets = [str(plain_qemu_guest.socket_path), missing, str(lab_domain.dedicated_socket)]
    return {"sockets": sockets, "guests": (first, second), "missing": missing}


def _fleet_run(fleet: dict[str, Any], *args: str) -> subprocess.CompletedProcess[bytes]:
    options = [word for path in fleet["sockets"] for word in ("--socket", path)]
    return subprocess.run(
        [sys.executable, "-m", "qgactl", "-j", "1", *options, *args],
        capture_output=True,
        timeout=120,
    )


def test_max_errors_starts_no_target_after_n_failures(fleet: dict[str, Any]) -> None:
    marker = f"/tmp/ran-{os.getpid()}"
    run = _fleet_run(
        fleet, "-o", "json", "exec", "--max-errors", "1", "--", "sh", "-c", f"touch {marker}"
    )
    first, second = fleet["guests"]
    ran = [guest.sh(f"test -e {marker} && rm -f {marker}")[0] == 0 for guest in (first, second)]
    assert ran == [True, False]  # the third target was never started
    assert run.returncode == 125  # one could not run the command
    rows = json.loads(run.stdout)
    assert [row["state"] for row in rows] == ["ok", "failed", "skipped"]
    assert rows[2]["exit_code"] is None and rows[2]["ok"] is False
    lines = run.stderr.decode().splitlines()
    assert any(fleet["sockets"][2] in line and "not started" in line for line in lines), lines


def test_max_errors_counts_non_zero_exits(fleet: dict[str, Any]) -> None:
    fleet = {**fleet, "sockets": [fleet["sockets"][0], fleet["sockets"][2]]}
    run = _fleet_run(fleet, "-o", "json", "exec", "--max-errors", "1", "--", "sh", "-c", "exit 3")
    assert run.returncode == 3
    assert [row["state"] for row in json.loads(run.stdout)] == ["failed", "skipped"]


def test_output_dir_has_each_targets_streams_and_status(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    out_dir = tmp_path / "made" / "here"
    script = "echo out; echo err >&2; printf partial; exit 3"
    run = _fleet_run(fleet, "exec", "--output-dir", str(out_dir), "--", "sh", "-c", script)
    assert run.returncode == 125  # the missing socket could not run it
    assert run.stdout == b""  # only the summary (and errors) on the terminal
    names = [path.replace("/", "_") for path in fleet["sockets"]]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(names)
    for name in (names[0], names[2]):
        folder = out_dir / name
        assert (folder / "stdout").read_bytes() == b"out\npartial"
        assert (folder / "stderr").read_bytes() == b"err\n"
        assert (folder / "status").read_text() == "3\n"
    assert (out_dir / names[1] / "status").read_text() == "125\n"


def test_several_targets_prefix_every_line_as_it_comes(fleet: dict[str, Any]) -> None:
    fleet = {**fleet, "sockets": [fleet["sockets"][0], fleet["sockets"][2]]}
    run = _fleet_run(fleet, "exec", "--", "sh", "-c", "printf 'a\\nb'; printf 'e' >&2")
    assert run.returncode == 0, run.stderr
    first, second = fleet["sockets"]
    lines = sorted(run.stdout.decode().splitlines())
    assert lines == sorted(f"{path}: {word}" for path in (first, second) for word in "ab")
    assert sorted(run.stderr.decode().splitlines()) == sorted(
        f"{path}: e" for path in (first, second)
    )
