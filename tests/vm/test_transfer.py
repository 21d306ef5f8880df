"""qgactl cp and cat on real guests, through libvirt and through a socket.

Contents and modes in the guest are checked with a raw agent call (guestside.Target.sh:
sha256sum, stat, ls), never by asking qgactl.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.guestside import Target, make_target

BOTH = pytest.mark.parametrize("target", ["libvirt", "socket"], indirect=True)
GUEST_DIR = "/tmp/qgactl-cp-test"


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    side = make_target(request.param, request)
    assert side.sh(f"rm -rf {GUEST_DIR} && mkdir {GUEST_DIR}")[0] == 0
    yield side
    side.sh(f"umount {GUEST_DIR}/small 2>/dev/null; rm -rf {GUEST_DIR}")
    assert "/tmp/qgactl" not in side.agent_fds()  # no guest file handle left open


def guest_sha256(target: Target, path: str) -> str:
    code, out = target.sh(f"sha256sum {path}")
    assert code == 0, out
    return out.split()[0].decode()


def guest_listing(target: Target, directory: str = GUEST_DIR) -> list[str]:
    return sorted(target.sh(f"ls -A {directory}")[1].decode().split())


@BOTH
@pytest.mark.parametrize("size", [0, 1, 4095, 1024 * 1024 + 3, 5 * 1024 * 1024 + 1])
def test_round_trip_is_byte_exact(target: Target, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "up").write_bytes(data)
    code, _, err = target.run("cp", str(tmp_path / "up"), target.guest_path(f"{GUEST_DIR}/f"))
    assert code == 0, err
    assert guest_sha256(target, f"{GUEST_DIR}/f") == hashlib.sha256(data).hexdigest()
    assert guest_listing(target) == ["f"]  # no temporary left beside it
    code, _, err = target.run("cp", target.guest_path(f"{GUEST_DIR}/f"), str(tmp_path / "down"))
    assert code == 0, err
    assert (tmp_path / "down").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["down", "up"]


@BOTH
def test_tens_of_megabytes_both_ways(target: Target, tmp_path: Path) -> None:
    size = 20 * 1024 * 1024
    code, digest = target.sh(f"head -c {size} /dev/urandom | tee {GUEST_DIR}/big | sha256sum")
    assert code == 0
    code, _, err = target.run(
        "cp", target.guest_path(f"{GUEST_DIR}/big"), str(tmp_path), timeout=300
    )
    assert code == 0, err
    down = (tmp_path / "big").read_bytes()
    assert hashlib.sha256(down).hexdigest() == digest.split()[0].decode()
    code, _, err = target.run(
        "cp", str(tmp_path / "big"), target.guest_path(f"{GUEST_DIR}/again"), timeout=600
    )
    assert code == 0, err
    assert guest_sha256(target, f"{GUEST_DIR}/again") == digest.split()[0].decode()


@BOTH
def test_cat_and_stdin_stdout(target: Target) -> None:
    data = os.urandom(100_000)
    code, _, err = target.run("cp", "-", target.guest_path(f"{GUEST_DIR}/s"), stdin=data)
    assert code == 0, err
    assert guest_sha256(target, f"{GUEST_DIR}/s") == hashlib.sha256(data).hexdigest()
    assert target.run("cat", f"{GUEST_DIR}/s")[1] == data
    assert target.run("cp", target.guest_path(f"{GUEST_DIR}/s"), "-")[1] == data


@BOTH
def test_directory_destination_and_modes(target: Target, tmp_path: Path) -> None:
    source = tmp_path / "tool.sh"
    source.write_bytes(b"#!/bin/sh\necho hi\n")
    source.chmod(0o750)
    assert target.run("cp", str(source), target.guest_path(GUEST_DIR + "/"))[0] == 0
    assert target.sh(f"stat -c %a {GUEST_DIR}/tool.sh")[1].strip() == b"750"
    # A file it replaces keeps its own mode and owner, unless -p.
    target.sh(f"chmod 600 {GUEST_DIR}/tool.sh && chown 1:1 {GUEST_DIR}/tool.sh")
    assert target.run("cp", str(source), target.guest_path(f"{GUEST_DIR}/tool.sh"))[0] == 0
    assert target.sh(f"stat -c %a:%u {GUEST_DIR}/tool.sh")[1].strip() == b"600:1"
    assert target.run("cp", "-p", str(source), target.guest_path(f"{GUEST_DIR}/tool.sh"))[0] == 0
    assert target.sh(f"stat -c %a {GUEST_DIR}/tool.sh")[1].strip() == b"750"
    # Guest -> host: into a directory under the source's name; -p keeps the guest's mode.
    target.sh(f"chmod 704 {GUEST_DIR}/tool.sh")
    assert (
        target.run("cp", "-p", target.guest_path(f"{GUEST_DIR}/tool.sh"), str(tmp_path / "d"))[0]
        == 0
    )
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o704


@BOTH
def test_missing_source_exits_6_and_creates_nothing(target: Target, tmp_path: Path) -> None:
    code, _, err = target.run("cp", target.guest_path(f"{GUEST_DIR}/nope"), str(tmp_path / "x"))
    assert code == 6
    assert b"No such file or directory" in err
    code, _, err = target.run("cp", target.guest_path(GUEST_DIR), str(tmp_path / "x"))
    assert code == 6 and b"-r" in err  # a directory without -r
    assert list(tmp_path.iterdir()) == []


@BOTH
def test_full_guest_disk_leaves_no_partial_file(target: Target, tmp_path: Path) -> None:
    target.sh(f"mkdir {GUEST_DIR}/small && mount -t tmpfs -o size=1m tmpfs {GUEST_DIR}/small")
    (tmp_path / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    code, _, err = target.run("cp", str(tmp_path / "big"), target.guest_path(f"{GUEST_DIR}/small/"))
    assert code == 6, err
    assert b"No space left" in err
    assert guest_listing(target, f"{GUEST_DIR}/small") == []
    code, _, err = target.run("cp", str(tmp_path / "big"), target.guest_path("/proc/version"))
    assert code == 6, err  # the guest refuses the temporary file: its words, nothing made


@BOTH
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_copies_leave_nothing(
    target: Target, tmp_path: Path, signum: signal.Signals
) -> None:
    (tmp_path / "big").write_bytes(os.urandom(24 * 1024 * 1024))
    upload = target.popen("cp", str(tmp_path / "big"), target.guest_path(f"{GUEST_DIR}/up"))
    _wait_for_guest_file(target)
    upload.send_signal(signum)
    upload.communicate(timeout=60)
    assert upload.returncode == 128 + signum
    assert guest_listing(target) == []
    target.sh(f"head -c 24000000 /dev/zero > {GUEST_DIR}/big")
    download = target.popen("cp", target.guest_path(f"{GUEST_DIR}/big"), str(tmp_path / "down"))
    time.sleep(1.0)
    download.send_signal(signum)
    download.communicate(timeout=60)
    assert download.returncode == 128 + signum
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


def _wait_for_guest_file(target: Target) -> None:
    give_up = time.monotonic() + 60
    while not guest_listing(target):
        assert time.monotonic() < give_up, "the upload never started"
        time.sleep(0.1)


@BOTH
def test_recursive_both_ways(target: Target, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a").write_bytes(b"alpha")
    (tree / "sub" / "b").write_bytes(os.urandom(70_000))
    (tree / "link").symlink_to("a")
    assert target.run("cp", "-r", str(tree), target.guest_path(GUEST_DIR))[0] == 0
    listing = target.sh(f"cd {GUEST_DIR} && find tree | sort && readlink tree/link")[1].decode()
    assert listing.split() == ["tree", "tree/a", "tree/link", "tree/sub", "tree/sub/b", "a"]
    assert guest_listing(target) == ["tree"]  # no scratch directory left
    back = tmp_path / "back"
    code, _, err = target.run("cp", "-r", target.guest_path(f"{GUEST_DIR}/tree"), str(back))
    assert code == 0, err
    assert (back / "sub" / "b").read_bytes() == (tree / "sub" / "b").read_bytes()
    assert os.readlink(back / "link") == "a"
    # A hostile archive member (an absolute symlink out of the tree) is not taken.
    target.sh(f"ln -s /etc/shadow {GUEST_DIR}/tree/evil")
    code, _, err = target.run(
        "cp", "-r", target.guest_path(f"{GUEST_DIR}/tree"), str(tmp_path / "b2")
    )
    assert code == 0, err
    assert not (tmp_path / "b2" / "evil").exists() and not (tmp_path / "b2" / "evil").is_symlink()


@pytest.mark.parametrize("target", ["libvirt"], indirect=True)
def test_a_progress_bar_on_a_terminal_only(target: Target, tmp_path: Path) -> None:
    import pty
    import subprocess
    import sys

    target.sh(f"head -c 8000000 /dev/zero > {GUEST_DIR}/big")
    leader, follower = pty.openpty()
    args = [
        "-m",
        "qgactl",
        *target.args("cp", target.guest_path(f"{GUEST_DIR}/big"), str(tmp_path)),
    ]
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    process.wait(timeout=120)
    os.close(leader)
    assert process.returncode == 0
    assert b"big" in seen and b"MB" in seen  # the bar: name, bytes moved, rate
    assert (tmp_path / "big").stat().st_size == 8000000
    code, _, err = target.run("cp", target.guest_path(f"{GUEST_DIR}/big"), str(tmp_path / "2"))
    assert code == 0 and err == b""  # no bar into a pipe
