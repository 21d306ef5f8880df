"""Keystroke echo latency of `qgactl shell` (a key sent, its echo seen), beside `virsh console`
on the same guest's serial getty. Both run on a pty of their own, as a user's terminal would.

The guest is the debian12 lab flavour (started here and stopped after), or the running domain
named by QGACTL_BENCH_DOMAIN (qemu:///system).
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import lab  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
SAMPLES = 200


@contextlib.contextmanager
def debian_domain() -> Iterator[str]:
    given = os.environ.get("QGACTL_BENCH_DOMAIN")
    if given:
        yield given
        return
    name = lab.test_domain_name("bench-shell")
    dom = lab.start_domain(name, flavour=lab.DEBIAN)
    try:
        yield dom
    finally:
        lab.destroy_and_undefine(name)


def read_until(fd: int, wanted: bytes, timeout: float = 20) -> None:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        if not select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
            raise TimeoutError(f"no {wanted!r} in {seen[-200:]!r}")
        seen += os.read(fd, 65536)


def echo_latencies(command: list[str], ready: bytes, setup: bytes = b"") -> list[float]:
    """Start ``command`` on a pty, wait for ``ready``, then time key -> echo SAMPLES times."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    try:
        if setup:
            time.sleep(1)
            os.write(fd, setup)
        read_until(fd, ready, timeout=60 if not setup else 20)
        times = []
        for i in range(SAMPLES):
            key = b"abcdefghij"[i % 10 : i % 10 + 1]
            started = time.perf_counter()
            os.write(fd, key)
            read_until(fd, key)
            times.append(time.perf_counter() - started)
            if i % 50 == 49:
                os.write(fd, b"\x15")  # Ctrl-U: an empty line again
                time.sleep(0.05)
                with contextlib.suppress(OSError):
                    while select.select([fd], [], [], 0.05)[0]:
                        os.read(fd, 65536)
        return times
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)  # virsh console ignores SIGTERM
        os.waitpid(pid, 0)
        os.close(fd)


def show(title: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[int(len(ms) * 0.95) - 1]
    print(f"  {title:<34} median {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms")


def bench_shell() -> None:
    with debian_domain() as domain:
        print(f"shell: keystroke echo latency on {domain}, {SAMPLES} keys (TCG)")
        # `cat` under the guest's pty: the guest's line discipline echoes each key. The marker
        # comes from the guest, so qgactl has its terminal in raw mode by then.
        guest = "echo qgactl-bench-$((1+1)); exec cat"
        qgactl = [PYTHON, "-m", "qgactl", "-c", lab.URI, "shell", domain, "--", "sh", "-c", guest]
        show("qgactl shell (-- cat)", echo_latencies(qgactl, b"qgactl-bench-2"))
        time.sleep(1)
        console = ["virsh", "-c", lab.URI, "console", "--force", domain]
        try:
            show("virsh console (serial getty)", echo_latencies(console, b"$ ", setup=b"\r"))
        except TimeoutError as exc:
            print(f"  virsh console: no getty prompt ({exc})")


if __name__ == "__main__":
    bench_shell()
