"""A real qemu-ga on this host, on a temporary unix socket: the tests' fast tier and bench/.

It acts on THIS machine, so it runs as `nobody` with every state-changing command blocked
(../shared/LAB.md: qemu-ga 7.2 has a block list but no allow list), and is stopped by the PID
we started, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

QEMU_GA = "/usr/sbin/qemu-ga"

# Everything that changes the host's state; the host agent must never run these.
HOST_BLOCKLIST = (
    "guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-shutdown,"
    "guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,"
    "guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,"
    "guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys,guest-fstrim,guest-exec,"
    "guest-file-open"
)


class HostAgent:
    """A real qemu-ga on a unix socket, as `nobody`, state-changing commands blocked."""

    def __init__(self, directory: Path) -> None:
        if not os.path.exists(QEMU_GA):
            raise AssertionError(f"{QEMU_GA} is missing: install qemu-guest-agent (make deps)")
        self.directory = directory
        self.socket_path = str(directory / "qga.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        os.chmod(self.directory, 0o777)
        command = [QEMU_GA, "-m", "unix-listen", "-p", self.socket_path]
        command += ["-t", str(self.directory), "-l", str(self.directory / "qga.log")]
        command += ["-b", HOST_BLOCKLIST]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        self.process = subprocess.Popen(command, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(self.socket_path):
                try:
                    with socket.socket(socket.AF_UNIX) as probe:
                        probe.connect(self.socket_path)
                    return
                except OSError:
                    pass
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"host qemu-ga did not start: {self.read_log()}")

    def stop(self) -> None:
        """Stop the agent we started; fail loudly if it had died on its own meanwhile."""
        if self.process and self.process.poll() is not None:
            raise AssertionError(
                f"host qemu-ga died during the run (exit {self.process.returncode}): "
                f"{self.read_log()[-2000:]}"
            )
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def read_log(self) -> str:
        log = self.directory / "qga.log"
        return log.read_text(errors="replace") if log.exists() else "(no log)"

    def __enter__(self) -> HostAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def temporary_host_agent() -> HostAgent:
    """A HostAgent in a fresh temporary directory (use it as a context manager)."""
    return HostAgent(Path(tempfile.mkdtemp(prefix="qgactl-agent-")))
