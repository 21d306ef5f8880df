#!/usr/bin/env python3
"""qgactl benchmarks: whole-process times against a floor, as medians and ratios.

    .venv/bin/python bench/run.py                 # every section
    .venv/bin/python bench/run.py socket          # one section: socket, libvirt, fleet,
                                                  # imports, completion, deb, exec,
                                                  # exec-stream, fleet-exec, transfer,
                                                  # guestinfo, fleet-guestinfo, shell, ansible

Runs are interleaved (floor, qgactl, floor, qgactl...) so that load on the machine hits both
alike. Times are printed, never asserted: the tests check behaviour, this checks speed.
Sections that need guests start them through lab/ and stop them afterwards.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The venv's own interpreter: `python3` on PATH may be a pyenv shim costing ~90 ms a start.
PYTHON = str(ROOT / ".venv" / "bin" / "python")
QGACTL = [PYTHON, str(ROOT / ".venv" / "bin" / "qgactl")]

RAW_SOCKET_PING = r"""
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
sync_id = int.from_bytes(os.urandom(8), "big") >> 1
s.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                "arguments": {"id": sync_id}}).encode())
buf = b""
while not buf.rstrip().endswith(b'"return": %d}' % sync_id):
    buf += s.recv(4096)
s.sendall(b'{"execute":"guest-ping"}')
buf = b""
while not buf.endswith(b"\n"):
    buf += s.recv(4096)
assert b'"return"' in buf
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def compare(
    title: str,
    floor: tuple[str, Callable[[], float]],
    subject: tuple[str, Callable[[], float]],
    runs: int = 30,
) -> None:
    floor_times: list[float] = []
    subject_times: list[float] = []
    floor[1](), subject[1]()  # warm the page cache
    for _ in range(runs):
        floor_times.append(floor[1]())
        subject_times.append(subject[1]())
    floor_ms = statistics.median(floor_times) * 1000
    subject_ms = statistics.median(subject_times) * 1000
    print(f"\n{title} ({runs} interleaved runs, medians)")
    print(f"  {floor[0]:<52} {floor_ms:8.1f} ms")
    print(f"  {subject[0]:<52} {subject_ms:8.1f} ms")
    ratio = subject_ms / floor_ms
    print(
        f"  {subject[0].split()[0]} takes {ratio:.2f}x the floor's time"
        + (f" ({1 / ratio:.2f}x faster)" if ratio < 1 else "")
    )


def compare3(
    title: str,
    loop: tuple[str, Callable[[], float]],
    floor: tuple[str, Callable[[], float]],
    subject: tuple[str, Callable[[], float]],
    runs: int = 10,
) -> None:
    """Three interleaved: the shell way, the bare floor and qgactl; speed-ups over the loop."""
    times: list[list[float]] = [[], [], []]
    for _, run in (loop, floor, subject):
        run()  # warm the page cache
    for _ in range(runs):
        for slot, (_, run) in zip(times, (loop, floor, subject)):
            slot.append(run())
    medians = [statistics.median(slot) * 1000 for slot in times]
    print(f"\n{title} ({runs} interleaved runs, medians)")
    for (label, _), ms in zip((loop, floor, subject), medians):
        versus = (
            f"{medians[0] / ms:5.2f}x faster than the loop"
            if ms <= medians[0]
            else f"{ms / medians[0]:5.2f}x slower than the loop"
        )
        print(f"  {label:<52} {ms:8.1f} ms  {versus}")
    print(f"  {subject[0].split()[0]} takes {medians[2] / medians[1]:.2f}x the floor's time")


def bench_socket() -> None:
    from lab.host_agent import temporary_host_agent

    with temporary_host_agent() as agent:
        sock = agent.socket_path
        compare(
            "qgactl --socket S ping vs a bare Python raw-socket sync+ping",
            (
                "python3 -c <raw socket sync+ping>",
                lambda: timed([PYTHON, "-c", RAW_SOCKET_PING, sock]),
            ),
            ("qgactl --socket S ping", lambda: timed([*QGACTL, "--socket", sock, "ping"])),
        )
        compare(
            "qgactl --help start-up vs a bare interpreter",
            ("python3 -c pass", lambda: timed([PYTHON, "-c", "pass"])),
            ("qgactl --help", lambda: timed([*QGACTL, "--help"])),
        )


LIBVIRT_PING = r"""
import sys, libvirt, libvirt_qemu
libvirt.registerErrorHandler(lambda c, e: None, None)
conn = libvirt.open("qemu:///system")
dom = conn.lookupByName(sys.argv[1])
assert "return" in libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', 5, 0)
"""


@contextlib.contextmanager
def lab_domains(count: int) -> Iterator[list[Any]]:
    """``count`` running lab guests (lab.LabDomain: a str) with an agent on .0 and a
    dedicated .1 socket, booted one after another."""
    from lab import lab

    lab.build_guest()
    lab.ensure_libvirtd()
    names: list[str] = []
    domains = []
    try:
        for index in range(count):
            name = lab.test_domain_name(f"bench{index}")
            names.append(name)
            domains.append(lab.start_domain(name, dedicated=True))
            print(f"  booted {name}", file=sys.stderr)
        yield domains
    finally:
        for name in names:
            lab.destroy_and_undefine(name)


def bench_libvirt() -> None:
    with lab_domains(1) as [name]:
        qgactl = ("qgactl ping D", lambda: timed([*QGACTL, "ping", name]))
        compare(
            "qgactl ping D vs a bare libvirt-python ping process (same interpreter)",
            (
                "python3 -c <libvirt open+lookup+qemuAgentCommand>",
                lambda: timed([PYTHON, "-c", LIBVIRT_PING, name]),
            ),
            qgactl,
        )
        compare(
            "qgactl ping D vs virsh qemu-agent-command",
            (
                "virsh qemu-agent-command D guest-ping",
                lambda: timed(
                    [
                        "virsh",
                        "-c",
                        "qemu:///system",
                        "qemu-agent-command",
                        name,
                        '{"execute":"guest-ping"}',
                    ]
                ),
            ),
            qgactl,
        )
        compare(
            "qgactl --transport socket (fresh chardev client) vs libvirt, whole process",
            (
                "qgactl --transport libvirt ping D",
                lambda: timed([*QGACTL, "--transport", "libvirt", "ping", name]),
            ),
            (
                "qgactl --transport socket ping D",
                lambda: timed([*QGACTL, "--transport", "socket", "ping", name]),
            ),
            runs=15,
        )


# The fleet floor: one connection, a thread per domain, nothing else (no CLI, no output).
LIBVIRT_FLEET_PING = r"""
import sys, threading, libvirt, libvirt_qemu
libvirt.registerErrorHandler(lambda c, e: None, None)
conn = libvirt.open("qemu:///system")
def ping(name):
    dom = conn.lookupByName(name)
    assert "return" in libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', 5, 0)
threads = [threading.Thread(target=ping, args=(name,)) for name in sys.argv[1:]]
[t.start() for t in threads]; [t.join() for t in threads]
"""


def bench_fleet(count: int = 16) -> None:
    with lab_domains(count) as names:
        virsh_loop = "; ".join(
            f'virsh -c qemu:///system qemu-agent-command {n} \'{{"execute":"guest-ping"}}\''
            for n in names
        )
        loop = (f"sh -c 'virsh ... x{count}'", lambda: timed(["sh", "-c", virsh_loop]))
        floor = (
            f"python3 -c <libvirt, {count} threads>",
            lambda: timed([PYTHON, "-c", LIBVIRT_FLEET_PING, *names]),
        )
        qgactl = (f"qgactl ping D1..D{count}", lambda: timed([*QGACTL, "ping", *names]))
        compare3(f"qgactl ping D1..D{count} (one process)", loop, floor, qgactl, runs=10)


IMPORT_GROUPS = ("libvirt", "click", "typing", "qgactl")


def bench_imports(runs: int = 10) -> None:
    """Where qgactl's start-up goes, from -X importtime: what the bare libvirt-python floors
    import too (libvirt) and what they don't (Click, typing, qgactl's own modules)."""
    with lab_domains(1) as [name]:
        totals: dict[str, list[float]] = {group: [] for group in (*IMPORT_GROUPS, "all")}
        for _ in range(runs):
            stderr = subprocess.run(
                [PYTHON, "-X", "importtime", QGACTL[1], "ping", name],
                check=True, capture_output=True, text=True,
            ).stderr  # fmt: skip
            sums = dict.fromkeys(totals, 0.0)
            for line in stderr.splitlines()[1:]:  # after the header line
                own, cumulative, module = line[len("import time:") :].split("|")
                imported = module.strip()
                if imported.split(".")[0] == "qgactl":
                    sums["qgactl"] += int(own) / 1000  # its own code, not what it imports
                elif imported in ("libvirt", "libvirt_qemu", "click", "typing"):
                    sums[imported.replace("_qemu", "")] += int(cumulative) / 1000
                if not module.startswith("  "):  # imported by __main__ itself: the whole tree
                    sums["all"] += int(cumulative) / 1000
            for group, value in sums.items():
                totals[group].append(value)
        print(f"\nqgactl ping D: import time by origin (-X importtime, median of {runs} runs)")
        for group, values in totals.items():
            print(f"  {group:<10} {statistics.median(values):7.1f} ms")
        print("  (the floors import libvirt only; importtime itself inflates every figure)")


DEB_QGACTL = "/usr/bin/qgactl"


def bench_deb() -> None:
    """The .deb (Debian's python3 with python3-click, -rich, -libvirt) next to the venv."""
    if not os.path.exists(DEB_QGACTL):
        print(
            f"\ndeb: skipped, {DEB_QGACTL} is not installed "
            "(make deb && apt-get install ./dist/qgactl_*.deb)"
        )
        return
    compare(
        "qgactl --help start-up: the .deb install vs the venv install",
        (".venv/bin/qgactl --help (the venv)", lambda: timed([*QGACTL, "--help"])),
        (
            "/usr/bin/qgactl --help (the .deb)",
            lambda: timed(["/usr/bin/python3", DEB_QGACTL, "--help"]),
        ),
        runs=50,
    )


def bench_completion() -> None:
    from bench import completion

    completion.run()


def bench_exec() -> None:
    from bench import transfer

    transfer.bench_exec()


def bench_exec_stream() -> None:
    from bench import transfer

    transfer.bench_exec_stream()


def bench_fleet_exec() -> None:
    from bench import transfer

    transfer.bench_fleet_exec()


def bench_transfer() -> None:
    from bench import transfer

    transfer.bench_transfer()


def bench_guestinfo() -> None:
    from bench import guestinfo

    guestinfo.bench_guestinfo()


def bench_fleet_guestinfo() -> None:
    from bench import guestinfo

    guestinfo.bench_fleet_guestinfo()


def bench_shell() -> None:
    from bench import shell

    shell.bench_shell()


def bench_ansible() -> None:
    from bench import ansible

    ansible.bench_ansible()


SECTIONS: dict[str, Callable[[], None]] = {
    "socket": bench_socket,
    "libvirt": bench_libvirt,
    "fleet": bench_fleet,
    "imports": bench_imports,
    "completion": bench_completion,
    "deb": bench_deb,
    "exec": bench_exec,
    "exec-stream": bench_exec_stream,
    "fleet-exec": bench_fleet_exec,
    "transfer": bench_transfer,
    "guestinfo": bench_guestinfo,
    "fleet-guestinfo": bench_fleet_guestinfo,
    "shell": bench_shell,
    "ansible": bench_ansible,
}


def main(argv: list[str]) -> None:
    chosen = argv or list(SECTIONS)
    for name in chosen:
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
    print(f"qgactl bench, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    interpreter = subprocess.run(
        [PYTHON, "-c", "import sys; print(sys.version.split()[0], sys._base_executable)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"interpreter: {PYTHON} = Python {interpreter}")
    # A pip install compiles bytecode; an editable tree under PYTHONDONTWRITEBYTECODE=1 would
    # recompile qgactl on every start and bench the compiler instead.
    subprocess.run([PYTHON, "-m", "compileall", "-q", "-f", str(ROOT / "qgactl")], check=True)
    for name in chosen:
        SECTIONS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
