"""The Ansible playbook on the lab's Debian 12 guest through qgactl.guest.agent (Ansible's
defaults) and through community.libvirt.libvirt_qemu (its remote-tmp workaround), in one run
(bench/run.py section "ansible"): wall time and each task's time side by side, then the
playbook over 4 guests with -f 4 (QGACTL_BENCH_ANSIBLE_GUESTS, QGACTL_BENCH_ANSIBLE_RUNS: how
many guests and runs).

The playbook (lab/ansible/bench.yml) copies 16 MiB in, templates a config, runs a command and
fetches the 16 MiB out; before each timed run the copies of the run before are removed, so both
files really move. Runs alternate between the plugins so that load hits both alike.
qgactl's plugin is timed twice per round: "lane cold" starts with no lane (its master and guest
side start within the playbook, as for the first playbook of a session) and "lane warm" right
after it (the lane still there, as for the next playbook within its persist time).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from lab import ansiblelab, lab

PLAYBOOK = ansiblelab.ROOT / "lab" / "ansible" / "bench.yml"
PLUGINS = {
    "qgactl.guest.agent": {},
    "community.libvirt.libvirt_qemu": {"ansible_remote_tmp": "/tmp/.ansible-reference"},
}
COLUMNS = {  # column: plugin
    "qgactl lane cold": "qgactl.guest.agent",
    "qgactl lane warm": "qgactl.guest.agent",
    "libvirt_qemu": "community.libvirt.libvirt_qemu",
}
# Each pipelined module costs seconds under TCG: fewer runs or guests for a quick look.
RUNS = int(os.environ.get("QGACTL_BENCH_ANSIBLE_RUNS", "3"))
GUESTS = int(os.environ.get("QGACTL_BENCH_ANSIBLE_GUESTS", "4"))


def _inventory(path: Path, domains: list[Any], plugin: str) -> Path:
    hosts = {
        str(domain): {
            "ansible_connection": plugin,
            "ansible_libvirt_uri": domain.uri,
            "ansible_python_interpreter": "/usr/bin/python3",
            **PLUGINS[plugin],
        }
        for domain in domains
    }
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return path


def _once(work: Path, collections: str, domains: list[Any], plugin: str, forks: int) -> Any:
    fetched = work / "fetched"
    fetched.mkdir(exist_ok=True)
    run = ansiblelab.run_playbook(
        PLAYBOOK, _inventory(work / "inventory.json", domains, plugin), collections,
        args=("-f", str(forks), "-e", json.dumps({"payload": str(work / "payload.bin"),
                                                  "fetched": str(fetched)})),
        timeout=1800,
    )  # fmt: skip
    if run.code != 0:
        raise SystemExit(f"{plugin}: ansible-playbook failed:\n{run.stdout}\n{run.stderr}")
    return run


def _table(title: str, runs: dict[str, list[Any]]) -> None:
    print(f"\n{title} ({RUNS} alternating runs each, medians in seconds; speed-up: libvirt_qemu's")
    print("time / qgactl's, lane cold and warm)")
    tasks = list(dict.fromkeys(r["task"] for r in runs["libvirt_qemu"][0].records))
    print(f"  {'':<28}" + "".join(f"{column:>18}" for column in COLUMNS) + f"{'speed-up':>14}")

    def row(name: str, seconds: dict[str, float]) -> None:
        cold, warm, theirs = (seconds[column] for column in COLUMNS)
        cells = "".join(f"{seconds[column]:>18.2f}" for column in COLUMNS)
        print(f"  {name:<28}{cells}{theirs / cold:>7.2f}x {theirs / warm:>5.2f}x")

    for task in tasks:
        row(task, {c: statistics.median(_task_seconds(r, task) for r in runs[c]) for c in COLUMNS})
    row("wall time (ansible-playbook)",
        {c: statistics.median(r.seconds for r in runs[c]) for c in COLUMNS})  # fmt: skip


def _task_seconds(run: Any, task: str) -> float:
    """The slowest host's time for the task (a task ends when its last host does)."""
    return max(r["seconds"] for r in run.records if r["task"] == task)


def _bench(domains: list[Any], collections: str, forks: int, title: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "payload.bin").write_bytes(os.urandom(16 * 1024 * 1024))
        runs: dict[str, list[Any]] = {column: [] for column in COLUMNS}
        # One untimed run first: a fresh guest reads python3 and its modules from disk under
        # TCG, and the first plugin timed would pay for that alone.
        _once(work, collections, domains, next(iter(PLUGINS)), forks)
        for _ in range(RUNS):
            for column, plugin in COLUMNS.items():
                _remove_copies(work, domains)
                if column == "qgactl lane cold":
                    _stop_lanes(domains)
                runs[column].append(_once(work, collections, domains, plugin, forks))
        _stop_lanes(domains)
        _table(title, runs)


def _remove_copies(work: Path, domains: list[Any]) -> None:
    """Untimed: the last run's copies go, so that every timed run moves both 16 MiB files
    (copy and fetch skip a file whose checksum already matches)."""
    import qgactl

    for copy in (work / "fetched").glob("*"):
        copy.unlink()
    for domain in domains:
        with qgactl.connect(str(domain), uri=domain.uri, timeout=30) as guest:
            guest.exec(["rm", "-f", "/tmp/bench-payload.bin"], check=True)


def _stop_lanes(domains: list[Any]) -> None:
    from qgactl.lane import Lane

    for domain in domains:
        Lane(str(domain), domain.uri, persist=0, timeout=10).stop()


def bench_ansible() -> None:
    lab.ensure_libvirtd()
    names = [lab.test_domain_name(f"bench-deb{index}") for index in range(GUESTS)]
    domains: list[Any] = []
    with tempfile.TemporaryDirectory() as scratch:
        collections = ansiblelab.install_collections(Path(scratch))
        try:
            for name in names:
                domains.append(lab.start_domain(name, flavour=lab.DEBIAN))
                print(f"  booted {name}", file=sys.stderr)
                if len(domains) == 1:
                    _bench(domains, collections, 1, "ansible: the playbook on one Debian 12 guest")
            if GUESTS > 1:
                title = f"ansible: the playbook on {GUESTS} Debian 12 guests, -f {GUESTS}"
                _bench(domains, collections, GUESTS, title)
        finally:
            for name in names:
                lab.destroy_and_undefine(name)
