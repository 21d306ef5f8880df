"""Fixtures shared by every tier: run qgactl as a real process, and a real host-run qemu-ga.

The host agent (lab/host_agent.py) acts on THIS machine: it runs as `nobody` with every
state-changing command blocked, and is stopped by the PID we started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from lab.host_agent import temporary_host_agent

# Every qgactl the tests start gets the signals a terminal gives it. A background job
# (`nohup make test &`, a CI runner) starts with SIGINT, and under nohup SIGHUP, ignored; a
# child inherits an ignored signal and qgactl rightly leaves it ignored, so the tests that send
# one would fail. Handlers, unlike SIG_IGN, are reset in a child by exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, lambda signum, frame: None)  # pytest itself stays nohup'ed


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_kib: int

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_qgactl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: bytes | None = None
) -> Run:
    """Run qgactl in a child process (real exit codes, real pipes); measure time and memory.
    ``stdin``: bytes to feed it (else it inherits pytest's)."""
    child_env = {key: value for key, value in os.environ.items() if key != "QGACTL_OUTPUT"}
    child_env.update(env or {})
    _reset_peak_rss()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "qgactl", *args],
        stdin=None if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env,
    )
    if stdin is not None:
        assert process.stdin is not None
        feeder = threading.Thread(target=_feed, args=(process.stdin, stdin), daemon=True)
        feeder.start()
    outputs: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda n=name, s=stream: outputs.__setitem__(n, s.read()))
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    # os.wait4 rather than communicate(): it also gives this child's own peak memory.
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > timeout:
            process.kill()
            os.wait4(process.pid, 0)
            raise AssertionError(f"qgactl {' '.join(args)} did not finish in {timeout}s")
        time.sleep(0.005)
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    return Run(
        process.returncode,
        outputs["stdout"].decode(errors="replace"),
        outputs["stderr"].decode(errors="replace"),
        time.monotonic() - started,
        usage.ru_maxrss,
    )


def _feed(pipe: Any, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except BrokenPipeError:
        pass  # qgactl stopped reading: that is what some tests check


def _reset_peak_rss() -> None:
    """A child inherits its parent's peak RSS into ru_maxrss (vfork/exec carry the high-water
    mark), so reset pytest's own first (proc(5): /proc/PID/clear_refs, value 5)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


@pytest.fixture
def qgactl():
    return run_qgactl


@pytest.fixture(scope="session")
def host_agent():
    with temporary_host_agent() as agent:
        yield agent
