"""`make demo` on a host where another guest is running without an answering agent (one still
booting, or without qemu-guest-agent): every step of the demo must still pass.

The real Makefile recipe runs, with the test's own demo domain name (qgactl-test-<pid>-demo,
removed afterwards) and this interpreter; `-o deps -o venv` keeps make from reinstalling them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lab import lab

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_passes_beside_a_guest_whose_agent_is_down(domain_agent_not_started):
    assert domain_agent_not_started.wait_console()
    assert lab.domain_state(domain_agent_not_started) == "running"
    assert domain_agent_not_started.channel_state() == "disconnected"
    name = lab.test_domain_name("demo")
    try:
        result = subprocess.run(
            ["make", "--no-print-directory", "-o", "deps", "-o", "venv", "demo",
             f"DEMO_DOMAIN={name}", f"PY={sys.executable}", f"QGACTL={sys.executable} -m qgactl"],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        lab.destroy_and_undefine(name)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "cp + cat: identical" in result.stdout
    # ping --all did ask the other guest, and said it failed
    assert "ping --all exited 4" in result.stdout
    assert any(
        domain_agent_not_started in line and "qgactl:" in line
        for line in result.stderr.splitlines()
    ), result.stderr
