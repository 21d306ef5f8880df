"""What `qgactl ping` imports on its way to the agent: not the models, tables or rich, which
it does not need for JSON (start-up is measured in bench/run.py imports, not asserted here)."""

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
