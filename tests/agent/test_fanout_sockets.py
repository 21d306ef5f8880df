"""Fan-out over several agent sockets and hosts, against the real host-run qemu-ga (read-only
commands only) and against a libvirt "host" that accepts connections and never answers."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.agent


@pytest.fixture
def socket_links(host_agent, tmp_path: Path) -> list[str]:
    """Two names for the host agent's socket, so that a quoted glob matches two targets."""
    links = [tmp_path / "a.qga", tmp_path / "b.qga"]
    for link in links:
        link.symlink_to(host_agent.socket_path)
    return [str(link) for link in links]


def test_several_sockets_one_missing_are_rows_and_the_first_failure_is_the_status(
    qgactl, host_agent, tmp_path: Path
) -> None:
    missing = str(tmp_path / "gone.sock")
    run = qgactl("-o", "json", "--socket", host_agent.socket_path, "--socket", missing, "ping")
    assert run.code == 3
    good, bad = run.json()
    assert (good["target"], good["ok"], good["exit_code"]) == (host_agent.socket_path, True, 0)
    assert (bad["target"], bad["ok"], bad["exit_code"]) == (missing, False, 3)
    assert "no socket at" in bad["error"]
    assert run.stderr.count("\n") == 1 and missing in run.stderr  # one line for the failure


def test_a_quoted_socket_glob_fans_out(qgactl, socket_links: list[str]) -> None:
    pattern = str(Path(socket_links[0]).parent / "*.qga")
    run = qgactl("-o", "json", "--socket", pattern, "osinfo")
    assert run.code == 0, run.stderr
    rows = run.json()
    assert [row["target"] for row in rows] == socket_links
    assert all(row["ok"] and row["kernel_release"] == os.uname().release for row in rows)


def test_fan_out_json_carries_each_commands_own_fields(qgactl, socket_links: list[str]) -> None:
    args = [part for link in socket_links for part in ("--socket", link)]
    run = qgactl("-o", "json", *args, "fsinfo")
    assert run.code == 0, run.stderr
    for row in run.json():
        assert set(row) >= {"target", "host", "ok", "exit_code", "error", "filesystems"}
        assert any(fs["mountpoint"] == "/" for fs in row["filesystems"])


def test_table_has_a_block_per_target(qgactl, socket_links: list[str]) -> None:
    args = [part for link in socket_links for part in ("--socket", link)]
    run = qgactl("-o", "table", *args, "info")
    assert run.code == 0, run.stderr
    assert all(run.stdout.count(link) == 1 for link in socket_links)
    assert run.stdout.count("guest-ping") == 2


def test_single_target_commands_refuse_several_sockets(qgactl, socket_links: list[str]) -> None:
    run = qgactl("--socket", socket_links[0], "--socket", socket_links[1], "raw", "guest-ping")
    assert run.code == 2
    assert "one agent" in run.stderr


@pytest.fixture
def dead_libvirt(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts and never answers: libvirt's open blocks on it."""
    path = str(tmp_path / "libvirt.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"qemu+unix:///system?socket={path}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_dead_host_fails_its_own_rows_within_the_timeout(qgactl, dead_libvirt: str) -> None:
    started = time.monotonic()
    run = qgactl("-t", "1.5", "-o", "json", "-c", dead_libvirt, "-c", dead_libvirt + "&x=1",
                 "ping", "vm1", "vm2")  # fmt: skip
    elapsed = time.monotonic() - started
    assert run.code == 5, run.stderr
    rows = run.json()
    assert [(row["target"], row["ok"]) for row in rows] == [("vm1", False), ("vm2", False)] * 2
    assert all("did not answer within 1.5s" in row["error"] for row in rows)
    assert elapsed < 6  # both hosts waited for at once, not one after the other
