"""What `qgactl ping` and `exec` import on their way to the agent (not the models, tables or
rich, which they do not need for JSON), and the libvirt connection opened while they import
(start-up is measured in bench/run.py imports, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qgactl import prefetch
from qgactl.discover import Libvirt


def test_ping_imports_no_models_tables_or_rich(host_agent):
    ping = ["--socket", host_agent.socket_path, "-o", "json", "ping"]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qgactl", *ping],
        capture_output=True,
        text=True,
        check=True,
    )
    [row] = json.loads(result.stdout)
    assert row["ok"] is True and row["transport"] == "socket"
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()[1:]}
    assert "qgactl.agent" in imported and "qgactl.ping" in imported
    assert not imported & {"qgactl.models", "qgactl.tables", "rich"}


def test_exec_imports_neither_models_nor_pathlib():
    """A short exec builds only the exec status (qgactl.replies) and writes no folder."""
    from fakeagent import FakeAgent
    from test_exec_scripted import ScriptedGuest

    with FakeAgent(ScriptedGuest(os_id="debian")) as agent:
        exec_true = ["--socket", agent.path, "exec", "--", "true"]
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "qgactl", *exec_true],
            capture_output=True,
            text=True,
        )
    assert result.returncode == 2  # the scripted guest's status: the command did run
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()[1:]}
    assert "qgactl.replies" in imported and "qgactl.guest_exec" in imported
    assert not imported & {"qgactl.models", "pathlib"}


@pytest.mark.parametrize(
    ("argv", "uri"),
    [
        (["ping", "vm1"], "qemu:///system"),
        (["-o", "json", "--debug", "exec", "vm1", "--", "ls", "--help"], "qemu:///system"),
        (["-c", "test:///default", "-t", "3", "ping", "vm1"], "test:///default"),
        (["--connect=qemu:///session", "domains"], "qemu:///session"),
        (["-cqemu:///session", "info", "vm1"], "qemu:///session"),
        (["--transport", "libvirt", "ping", "vm1"], "qemu:///system"),
        # no host, several, or only help: nothing is opened
        (["--socket", "/run/qga.sock", "ping"], None),
        (["--transport=socket", "ping", "vm1"], None),
        (["-c", "qemu:///system", "-c", "qemu:///session", "ping", "--all"], None),
        (["exec", "--help"], None),
        (["--help"], None),
        (["completion", "bash"], None),
        ([], None),
    ],
)
def test_the_host_opened_at_start_up_is_the_one_the_command_line_names(argv, uri):
    assert prefetch._host_of(argv) == uri


def test_the_connection_opened_at_start_up_is_the_one_the_command_uses(monkeypatch):
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    prefetch.start(["-c", "test:///default", "domains"])
    prefetch._threads["test:///default"].join()
    opened = prefetch._connections["test:///default"]
    assert opened.getURI() == "test:///default"
    assert Libvirt("test:///default").conn is opened
    assert Libvirt("test:///default").conn is not opened  # handed to the first one only
    assert prefetch.take("test:///default") is None


def test_a_remote_host_is_not_opened_at_start_up():
    prefetch.start(["-c", "qemu+ssh://root@kvm1/system", "ping", "vm1"])  # ssh may prompt
    assert prefetch.take("qemu+ssh://root@kvm1/system") is None
