"""qgactl exec on real guests, through libvirt and through a socket.

What a command did in the guest (a process left running, a spool file, an open handle) is
checked with a raw agent call (guestside.Target.sh), never by asking qgactl.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.vm.guestside import Target, make_target

BOTH = pytest.mark.parametrize("target", ["libvirt", "socket"], indirect=True)
LIBVIRT = pytest.mark.parametrize("target", ["libvirt"], indirect=True)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    side = make_target(request.param, request)
    yield side
    # Every test leaves the guest as it found it: no spool file, no handle, no stray process.
    assert side.sh("ls -A /run/qgactl 2>/dev/null")[1] == b""
    assert "/run/qgactl" not in side.agent_fds()
    assert "qgactl-probe" not in side.processes()


@BOTH
@pytest.mark.parametrize(
    ("argv", "status", "out", "err"),
    [
        (["/bin/true"], 0, b"", b""),
        (["sh", "-c", "printf out; printf err >&2; exit 3"], 3, b"out", b"err"),
        (["sh", "-c", "kill -9 $$"], 128 + 9, b"", b""),
        (["sh", "-c", "exit 255"], 255, b"", b""),
    ],
)
def test_status_and_streams_are_the_guest_commands(
    target: Target, argv: list[str], status: int, out: bytes, err: bytes
) -> None:
    code, stdout, stderr = target.run("exec", "--", *argv)
    assert (code, stdout, stderr) == (status, out, err)


@BOTH
def test_the_spool_directory_is_made_root_only_when_it_is_missing(target: Target) -> None:
    assert target.sh("rm -rf /run/qgactl")[0] == 0  # as after a boot: /run is a tmpfs
    assert target.run("exec", "--", "echo", "made") == (0, b"made\n", b"")
    assert target.sh("stat -c '%a %U' /run/qgactl")[1] == b"700 root\n"
    assert target.run("exec", "--", "echo", "again") == (0, b"again\n", b"")


@BOTH
def test_not_found_is_127_and_not_executable_is_126(target: Target) -> None:
    code, _, stderr = target.run("exec", "--", "/no/such/program")
    assert code == 127
    assert b"/no/such/program" in stderr
    code, _, stderr = target.run("exec", "--", "/etc/hostname")
    assert code == 126
    assert b"Permission denied" in stderr


@BOTH
def test_output_is_byte_exact_and_stdin_of_megabytes_arrives(target: Target) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)  # every byte value, not a multiple of any chunk
    code, stdout, stderr = target.run("exec", "-i", "--", "cat", stdin=data)
    assert (code, stderr) == (0, b"")
    assert stdout == data


@BOTH
def test_without_i_the_command_gets_no_stdin_and_qgactl_reads_none(target: Target) -> None:
    # A `while read` loop around qgactl keeps its lines: qgactl must not eat stdin.
    qgactl = " ".join(
        shlex.quote(a) for a in [sys.executable, "-m", "qgactl", *target.args("exec", "--", "cat")]
    )
    script = f"printf 'a\\nb\\n' | {{ {qgactl}; cat; }}"
    output = subprocess.run(["sh", "-c", script], capture_output=True, timeout=60).stdout
    assert output == b"a\nb\n"


@BOTH
def test_env_and_shell(target: Target) -> None:
    code, stdout, _ = target.run(
        "exec", "-e", "GREETING=hi there", "-s", "--", 'echo "$GREETING" | wc -c'
    )
    assert (code, stdout.strip()) == (0, b"9")
    code, stdout, _ = target.run("exec", "-e", "A=1", "--", "sh", "-c", 'echo "$A:$PATH"')
    assert code == 0
    assert stdout.startswith(b"1:/") and b"/bin" in stdout  # added to, not replacing, the env


@BOTH
def test_json_has_the_fields_and_base64_for_bytes_that_are_not_utf8(target: Target) -> None:
    argv = ["sh", "-c", r"printf 'ok\377'; printf 'warn' >&2; exit 4"]
    code, stdout, _ = target.run("exec", "--", *argv, options=("-o", "json"))
    result = json.loads(stdout)
    assert code == 4
    assert result["exit_code"] == 4 and result["signal"] is None
    assert result["stdout_base64"] == "b2v/" and result["stdout"] == "ok\ufffd"
    assert result["stderr"] == "warn" and "stderr_base64" not in result
    assert result["stdout_truncated"] is False and result["stderr_truncated"] is False
    assert isinstance(result["pid"], int) and result["pid"] > 1


@BOTH
def test_timeout_run_kills_the_command_and_all_it_started(target: Target) -> None:
    """Also what a process group kill would miss: an orphan, a process in a session of its
    own, and one that ignores SIGTERM (it outlives the command's own shell)."""
    started = time.monotonic()
    script = (
        "sleep 300 | cat & (sleep 302 &); setsid sleep 303 & "
        "sh -c 'trap \"\" TERM; sleep 304' # qgactl-probe"
    )
    code, _, stderr = target.run("exec", "--timeout-run", "2", "-s", "--", script)
    assert code == 124, stderr
    assert time.monotonic() - started < 15
    processes = target.processes()
    for left in ("sleep 300", "sleep 302", "sleep 303", "sleep 304", "qgactl-probe"):
        assert left not in processes, processes


@BOTH
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_kills_the_guest_command_and_exits_128_plus_n(
    target: Target, signum: signal.Signals
) -> None:
    process = target.popen("exec", "-s", "--", "sleep 301 | cat # qgactl-probe")
    give_up = time.monotonic() + 30
    while "sleep 301" not in target.processes():
        assert time.monotonic() < give_up, "the guest command never started"
        time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, stderr
    assert "sleep 301" not in target.processes()


@LIBVIRT
def test_output_of_tens_of_megabytes_through_libvirt_leaves_the_agent_working(
    target: Target,
) -> None:
    # Past both libvirt cliffs (4 MiB fails the reply, 10 MiB breaks the domain's agent).
    size = 24 * 1024 * 1024
    code, digest = target.sh(f"head -c {size} /dev/urandom | tee /tmp/big | sha256sum")
    assert code == 0
    code, stdout, stderr = target.run("exec", "--", "cat", "/tmp/big", timeout=300)
    target.sh("rm -f /tmp/big")
    assert (code, stderr) == (0, b"")
    assert len(stdout) == size
    assert hashlib.sha256(stdout).hexdigest() == digest.split()[0].decode()
    assert target.virsh_ping is not None
    virsh = subprocess.run(target.virsh_ping, capture_output=True, text=True, timeout=30)
    assert virsh.returncode == 0 and '"return":{}' in virsh.stdout.replace(" ", ""), virsh


def test_a_guest_that_blocks_exec_and_files_says_which_and_how_to_allow(
    qgactl, blocked_guest, tmp_path
) -> None:
    socket = str(blocked_guest.socket_path)
    run = qgactl("--socket", socket, "exec", "--", "true")
    assert run.code == 125
    assert "guest-exec" in run.stderr and "block-rpcs" in run.stderr
    run = qgactl("--socket", socket, "cp", ":/etc/hostname", str(tmp_path))
    assert run.code == 6
    assert "guest-file-open" in run.stderr and "block-rpcs" in run.stderr
    run = qgactl("--socket", socket, "cp", "/etc/hostname", ":/tmp/x")
    assert run.code == 6
    assert "guest-exec" in run.stderr
    assert list(tmp_path.iterdir()) == []
