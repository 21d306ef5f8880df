"""exec and cp against their floors (bench/run.py sections "exec" and "transfer").

exec: ``qgactl exec D -- /bin/true`` as a whole process against a bare libvirt-python process
that does guest-exec and polls guest-exec-status every millisecond, and against the virsh way
(guest-exec, then a shell loop of guest-exec-status).

transfer: throughput of ``qgactl cp`` of 16 MiB each way against an in-process raw chunk loop
(libvirt-python or a raw socket, no qgactl) at each chunk size, so the table shows both the
floor at the best safe chunk and what smaller chunks (Ansible's 64 KiB, qemu-ga-client's
1 KiB) cost.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench.run import PYTHON, QGACTL, compare, compare3, lab_domains, timed
from qgactl.guest_exec import SMALL_OUTPUT, WRAPPER

LIBVIRT_EXEC = r"""
import json, sys, time, libvirt, libvirt_qemu
libvirt.registerErrorHandler(lambda c, e: None, None)
dom = libvirt.open("qemu:///system").lookupByName(sys.argv[1])
call = lambda m: json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(m), 5, 0))["return"]
pid = call({"execute": "guest-exec", "arguments": {"path": "/bin/true", "capture-output": True}})
while not call({"execute": "guest-exec-status", "arguments": {"pid": pid["pid"]}})["exited"]:
    time.sleep(0.001)
"""

VIRSH_EXEC = r"""
d=$1
q() { virsh -c qemu:///system qemu-agent-command "$d" "$1"; }
pid=$(q '{"execute":"guest-exec","arguments":{"path":"/bin/true","capture-output":true}}' \
      | sed 's/.*"pid":\([0-9]*\).*/\1/')
until q "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}" | grep -q '"exited":true'
do sleep 0.01; done
"""

KiB = 1024
MiB = 1024 * KiB
SIZE = 16 * MiB
GUEST_SOURCE = "/tmp/bench.src"


def bench_exec() -> None:
    with lab_domains(1) as [name]:
        compare3(
            "qgactl exec D -- /bin/true: the virsh way, the bare libvirt-python floor, qgactl",
            (
                "virsh guest-exec + guest-exec-status loop",
                lambda: timed(["sh", "-c", VIRSH_EXEC, "sh", name]),
            ),
            (
                "python3 -c <libvirt guest-exec, poll 1 ms>",
                lambda: timed([PYTHON, "-c", LIBVIRT_EXEC, name]),
            ),
            (
                "qgactl exec D -- /bin/true",
                lambda: timed([*QGACTL, "exec", name, "--", "/bin/true"]),
            ),
            runs=20,
        )


# A qgactl to compare with (e.g. the main branch's venv), for the streaming section.
BASELINE = os.environ.get("QGACTL_BASELINE")


def bench_exec_stream() -> None:
    """``qgactl exec D -- cat 16MiB-file > /dev/null`` in MiB/s, against the raw 1 MiB read
    loop (in-process, the floor) and, with QGACTL_BASELINE=path/to/qgactl, another build
    (the batch exec before live output)."""
    import libvirt
    import libvirt_qemu

    libvirt.registerErrorHandler(lambda c, e: None, None)
    with lab_domains(1) as [name], tempfile.TemporaryDirectory() as scratch:
        dom = libvirt.open("qemu:///system").lookupByName(name)

        def call(message: dict[str, Any]) -> Any:
            return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(message), 60, 0))[
                "return"
            ]

        source = Path(scratch, "src")
        source.write_bytes(os.urandom(SIZE))
        _upload(call, source, GUEST_SOURCE)
        runs: dict[str, Callable[[], float]] = {
            "raw read loop, 1 MiB chunks (floor)": lambda: _raw_read(call, GUEST_SOURCE, MiB),
            "qgactl exec D -- cat F": lambda: timed(
                [*QGACTL, "exec", name, "--", "cat", GUEST_SOURCE]
            ),
            "qgactl exec D -s -- 'sleep 0.3; cat F' (live)": lambda: (
                timed([*QGACTL, "exec", name, "-s", "--", f"sleep 0.3; cat {GUEST_SOURCE}"]) - 0.3
            ),
        }
        if BASELINE:
            runs[f"{BASELINE} exec D -- cat F"] = lambda: timed(
                [PYTHON, BASELINE, "exec", name, "--", "cat", GUEST_SOURCE]
            )
        times: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(5):  # interleaved
            for label, run in runs.items():
                times[label].append(run())
        print(f"\nexec of cat {SIZE // MiB} MiB > /dev/null, through libvirt (median of 5)")
        for label, values in times.items():
            print(f"  {label:<60} {SIZE / statistics.median(values) / MiB:7.2f} MiB/s")


def bench_transfer() -> None:
    import libvirt
    import libvirt_qemu

    libvirt.registerErrorHandler(lambda c, e: None, None)
    with lab_domains(1) as [name], tempfile.TemporaryDirectory() as scratch:
        dom = libvirt.open("qemu:///system").lookupByName(name)
        socket_path = str(name.dedicated_socket)

        def libvirt_call(message: dict[str, Any]) -> Any:
            return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(message), 60, 0))[
                "return"
            ]

        calls = {"libvirt": lambda: libvirt_call, "socket": lambda: RawSocket(socket_path).call}
        targets = {
            "libvirt": (["--transport", "libvirt"], f"{name}:"),
            "socket": (["--socket", socket_path], ":"),
        }
        chunks = {  # (reads, writes) tried for the floor, within each transport's bounds
            "libvirt": ((64 * KiB, MiB, 2 * MiB), (64 * KiB, 128 * KiB, 160 * KiB)),
            "socket": (
                (64 * KiB, MiB, 4 * MiB, 8 * MiB, 16 * MiB),
                (64 * KiB, MiB, 2 * MiB, 4 * MiB),
            ),
        }
        source = Path(scratch, "src")
        source.write_bytes(os.urandom(SIZE))
        _upload(libvirt_call, source, GUEST_SOURCE)
        print(f"\ncp of {SIZE // MiB} MiB in MiB/s, median of 3 (raw loops: in-process, no qgactl)")
        for kind, connect in calls.items():
            options, guest = targets[kind]
            reads, writes = chunks[kind]
            down = [*QGACTL, *options, "cp", guest + GUEST_SOURCE, str(Path(scratch, "down"))]
            print(
                f"  {kind:8} qgactl cp guest->host            {_rate(lambda d=down: timed(d)):7.2f}"
            )
            # A socket serves one client at a time: each raw loop connects (and syncs) anew,
            # and is gone before qgactl runs.
            for chunk in reads:
                rate = _rate(lambda c=chunk, f=connect: _raw_read(f(), GUEST_SOURCE, c))
                print(f"  {kind:8} raw read loop, {chunk // KiB:>5} KiB chunks {rate:7.2f}")
            seconds = _raw_read(connect(), GUEST_SOURCE, KiB, limit=MiB)
            print(f"  {kind:8} raw read loop,     1 KiB chunks {1 / seconds:7.2f} (its first MiB)")
            up = [*QGACTL, *options, "cp", str(source), guest + "/tmp/bench.up"]
            print(
                f"  {kind:8} qgactl cp host->guest            {_rate(lambda u=up: timed(u)):7.2f}"
            )
            for chunk in writes:
                rate = _rate(
                    lambda c=chunk, f=connect: _raw_write(f(), source, "/tmp/bench.raw", c)
                )
                print(f"  {kind:8} raw write loop, {chunk // KiB:>4} KiB chunks {rate:7.2f}")


class RawSocket:
    """A minimal persistent agent client: connect and sync once, then one line per reply."""

    def __init__(self, path: str) -> None:
        import socket

        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(path)
        sync_id = int.from_bytes(os.urandom(8), "big") >> 1
        message = {"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}
        self.sock.sendall(b"\xff" + json.dumps(message).encode())
        self.buffer = b""
        while not self.buffer.rstrip().endswith(b'"return": %d}' % sync_id):
            self.buffer += self.sock.recv(65536)
        self.buffer = b""

    def call(self, message: dict[str, Any]) -> Any:
        self.sock.sendall(json.dumps(message).encode())
        while b"\n" not in self.buffer:
            self.buffer += self.sock.recv(1024 * 1024)
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)["return"]

    def __del__(self) -> None:
        self.sock.close()


def _upload(call: Callable[[dict[str, Any]], Any], source: Path, path: str) -> None:
    _raw_write(call, source, path, 128 * KiB)


def _rate(run: Callable[[], float], runs: int = 3) -> float:
    """MiB/s of SIZE bytes, from the median of ``runs`` timings."""
    return SIZE / statistics.median(run() for _ in range(runs)) / MiB


def _raw_read(
    call: Callable[[dict[str, Any]], Any], path: str, chunk: int, limit: int | None = None
) -> float:
    started = time.perf_counter()
    handle = call({"execute": "guest-file-open", "arguments": {"path": path, "mode": "r"}})
    total = 0
    while limit is None or total < limit:
        reply = call(
            {"execute": "guest-file-read", "arguments": {"handle": handle, "count": chunk}}
        )
        total += len(base64.b64decode(reply["buf-b64"]))
        if reply["eof"]:
            break
    call({"execute": "guest-file-close", "arguments": {"handle": handle}})
    return time.perf_counter() - started


def _raw_write(call: Callable[[dict[str, Any]], Any], source: Path, path: str, chunk: int) -> float:
    data = source.read_bytes()
    started = time.perf_counter()
    handle = call({"execute": "guest-file-open", "arguments": {"path": path, "mode": "w"}})
    for offset in range(0, len(data), chunk):
        piece = base64.b64encode(data[offset : offset + chunk]).decode()
        call({"execute": "guest-file-write", "arguments": {"handle": handle, "buf-b64": piece}})
    call({"execute": "guest-file-close", "arguments": {"handle": handle}})
    return time.perf_counter() - started


FLEET_EXEC_FLOOR = r"""
import json, sys, threading, time, libvirt, libvirt_qemu
libvirt.registerErrorHandler(lambda c, e: None, None)
conn = libvirt.open("qemu:///system")
def run(name):
    dom = conn.lookupByName(name)
    call = lambda m: json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(m), 10, 0))["return"]
    exec_ = {"path": "/bin/true", "capture-output": True}
    pid = call({"execute": "guest-exec", "arguments": exec_})["pid"]
    while not call({"execute": "guest-exec-status", "arguments": {"pid": pid}})["exited"]:
        time.sleep(0.001)
threads = [threading.Thread(target=run, args=(n,)) for n in sys.argv[1:]]
[t.start() for t in threads]; [t.join() for t in threads]
"""


_WRAPPER_ARGV = ["-c", WRAPPER, "qgactl", "/run/qgactl/b-@DOMAIN@", str(SMALL_OUTPUT),
                 "/dev/null", "", "", "0", "/bin/true"]  # fmt: skip
FLEET_WRAPPED_FLOOR = FLEET_EXEC_FLOOR.replace(
    '{"path": "/bin/true", "capture-output": True}',
    f'{{"path": "/bin/sh", "arg": [a.replace("@DOMAIN@", name) for a in {_WRAPPER_ARGV!r}], '
    '"capture-output": True}',
)


def bench_fleet_exec(count: int = 8) -> None:
    with lab_domains(count) as names:
        glob = names[0].rsplit("-", 1)[0] + "-bench*"
        loop = ["sh", "-c", 'for d in "$@"; do sh -c "$S" sh "$d"; done', "sh", *names]
        env = dict(os.environ, S=VIRSH_EXEC)
        compare3(
            f"qgactl exec GLOB -- true over {count} guests (one process)",
            (f"virsh guest-exec + status loop x{count}", lambda: timed(loop, env)),
            (
                f"python3 -c <libvirt guest-exec + poll, {count} threads>",
                lambda: timed([PYTHON, "-c", FLEET_EXEC_FLOOR, *names]),
            ),
            (
                f"qgactl exec '{glob}' -- true",
                lambda: timed([*QGACTL, "exec", glob, "--", "/bin/true"]),
            ),
        )
        # What the guests alone make of qgactl's wrapper (guest_exec.WRAPPER: a shell, the
        # command in a child, rm): the same floor with it in place of a bare /bin/true.
        compare(
            f"the {count}-thread floor running qgactl's wrapper around true, vs qgactl",
            (
                "python3 -c <libvirt guest-exec of the wrapper + poll>",
                lambda: timed([PYTHON, "-c", FLEET_WRAPPED_FLOOR, *names]),
            ),
            (
                f"qgactl exec '{glob}' -- true",
                lambda: timed([*QGACTL, "exec", glob, "--", "/bin/true"]),
            ),
            runs=10,
        )
