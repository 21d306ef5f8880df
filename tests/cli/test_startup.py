"""What `qgactl ping` and `exec` import on their way to the agent: not the models, tables or
rich, which they do not need for JSON, nor pathlib (start-up is measured in bench/run.py
imports, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys


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
