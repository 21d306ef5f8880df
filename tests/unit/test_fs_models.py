"""The filesystem models (from_reply checks, to_json), the byte units, and the watchdog's
state-file safety (it must never kill a process that isn't its own watchdog).

Replies are the lab guest's own (qemu-ga 7.2), plus the optional members a newer or another
agent sends or leaves out (qga/qapi-schema.json).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qgactl import watchdog
from qgactl.errors import ProtocolError
from qgactl.models import Disk, Filesystem, TrimResult, noting_gaps
from qgactl.tables import human_bytes

ADDRESS = {
    "bus-type": "virtio",
    "bus": 0,
    "unit": 0,
    "pci-controller": {"bus": 0, "slot": 3, "domain": 0, "function": 0},
    "dev": "/dev/vda",
    "target": 0,
}
FSINFO = [
    {
        "name": "vda",
        "total-bytes": 13237248,
        "mountpoint": "/mnt/data",
        "disk": [ADDRESS],
        "used-bytes": 15360,
        "type": "ext4",
    }
]
DISKS = [{"name": "/dev/vda", "dependencies": [], "partition": False, "address": ADDRESS}]


def test_fsinfo_from_the_lab_guest() -> None:
    [fs] = Filesystem.list_from_reply(FSINFO)
    assert (fs.mountpoint, fs.type, fs.name) == ("/mnt/data", "ext4", "vda")
    assert (fs.used_bytes, fs.total_bytes, fs.total_bytes_privileged) == (15360, 13237248, None)
    [disk] = fs.disks
    assert (disk.bus_type, disk.dev, disk.serial) == ("virtio", "/dev/vda", None)
    assert disk.pci_controller is not None and disk.pci_controller.slot == 3
    data = json.loads(json.dumps(fs.to_json()))  # JSON-able all the way down
    assert data["disks"][0]["pci_controller"] == {"domain": 0, "bus": 0, "slot": 3, "function": 0}


def test_fsinfo_optional_members() -> None:
    """used/total are optional (absent when statvfs fails); -privileged is 9.1+; serial 3.1+."""
    reply = copy.deepcopy(FSINFO)
    del reply[0]["used-bytes"], reply[0]["total-bytes"]
    reply[0]["total-bytes-privileged"] = 14000000
    reply[0]["disk"][0]["serial"] = "QM0001"
    reply[0]["disk"][0]["ccw-address"] = {"cssid": 0, "ssid": 0, "subchno": 1, "devno": 2}
    [fs] = Filesystem.list_from_reply(reply)
    assert (fs.used_bytes, fs.total_bytes, fs.total_bytes_privileged) == (None, None, 14000000)
    assert fs.disks[0].serial == "QM0001"
    # s390x's ccw-address is not modelled, but reaches the JSON as the agent sent it
    ccw = fs.to_json()["disks"][0]["ccw-address"]
    assert ccw == {"cssid": 0, "ssid": 0, "subchno": 1, "devno": 2}
    assert Filesystem.list_from_reply([]) == ()


@pytest.mark.parametrize(
    "breakage",
    [
        lambda r: r.__setitem__(0, "vda"),
        lambda r: r[0].__setitem__("mountpoint", 1),
        lambda r: r[0].__setitem__("used-bytes", "15360"),
        lambda r: r[0].__setitem__("used-bytes", True),  # a bool is not a count
        lambda r: r[0].__setitem__("disk", {}),
        lambda r: r[0]["disk"][0].__setitem__("bus", "0"),
        lambda r: r[0]["disk"][0].__setitem__("bus-type", ["virtio"]),
        lambda r: r[0]["disk"][0]["pci-controller"].__setitem__("slot", "3"),
    ],
)
def test_fsinfo_wrong_shapes_are_protocol_errors(breakage) -> None:
    reply = copy.deepcopy(FSINFO)
    breakage(reply)
    with pytest.raises(ProtocolError):
        Filesystem.list_from_reply(reply)


def test_fsinfo_lacking_mandatory_members_are_none_and_named() -> None:
    """A disk with only serial and bus-type (what some agents send): shown, the gaps named."""
    reply = copy.deepcopy(FSINFO)
    del reply[0]["mountpoint"]
    reply[0]["disk"] = [{"serial": "S4EWNX0R123456", "bus-type": "nvme"}]
    reply[0]["disk"][0]["pci-controller"] = {"domain": 0, "bus": 1}  # no slot, no function
    [fs], lines = noting_gaps(Filesystem.list_from_reply, reply)
    assert fs.mountpoint is None and fs.name == "vda"
    [disk] = fs.disks
    assert (disk.serial, disk.bus_type, disk.bus, disk.unit) == (
        "S4EWNX0R123456",
        "nvme",
        None,
        None,
    )
    assert lines == [
        "guest-get-fsinfo: reply lacks mountpoint, disk.bus, disk.target, disk.unit, "
        "disk.pci-controller.slot, disk.pci-controller.function (shown empty)"
    ]
    assert fs.to_json()["mountpoint"] is None


def test_fsinfo_not_a_list() -> None:
    with pytest.raises(ProtocolError):
        Filesystem.list_from_reply({"return": FSINFO})


def test_disks_from_the_lab_guest_and_optional_members() -> None:
    [disk] = Disk.list_from_reply(DISKS)
    assert (disk.name, disk.partition, disk.dependencies, disk.alias) == (
        "/dev/vda",
        False,
        (),
        None,
    )
    assert disk.address is not None and disk.address.bus_type == "virtio"
    lvm = {
        "name": "/dev/dm-0",
        "partition": False,
        "dependencies": ["/dev/sda2"],
        "alias": "vg-root",
    }
    [disk] = Disk.list_from_reply([lvm])
    assert (disk.address, disk.dependencies, disk.alias) == (None, ("/dev/sda2",), "vg-root")
    assert json.loads(json.dumps(disk.to_json()))["dependencies"] == ["/dev/sda2"]


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "/dev/vda", "partition": "no"},
        {"name": "/dev/vda", "partition": False, "dependencies": [1]},
        {"name": 1, "partition": False},
        {"name": "/dev/vda", "partition": False, "address": []},
    ],
)
def test_disks_wrong_shapes_are_protocol_errors(entry) -> None:
    with pytest.raises(ProtocolError):
        Disk.list_from_reply([entry])


def test_a_disk_lacking_name_and_partition_is_shown() -> None:
    entry = {"address": {"serial": "QM00001", "bus-type": "sata"}}
    [disk], lines = noting_gaps(Disk.list_from_reply, [entry])
    assert (disk.name, disk.partition) == (None, None)
    assert disk.address is not None and disk.address.serial == "QM00001"
    assert lines == [
        "guest-get-disks: reply lacks name, partition, address.pci-controller, address.bus, "
        "address.target, address.unit (shown empty)"
    ]


def test_fstrim_results() -> None:
    reply = {
        "paths": [
            {"path": "/mnt/data", "trimmed": 14395392, "minimum": 0},
            {"path": "/boot", "error": "Operation not supported"},
        ]
    }
    ok, failed = TrimResult.list_from_reply(reply)
    assert (ok.path, ok.trimmed, ok.minimum, ok.error) == ("/mnt/data", 14395392, 0, None)
    assert (failed.trimmed, failed.error) == (None, "Operation not supported")
    for broken in ([], {"paths": "x"}, {"paths": [{"path": 1, "trimmed": 1}]}):
        with pytest.raises(ProtocolError):
            TrimResult.list_from_reply(broken)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (None, None),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (13237248, "12.6 MiB"),
        (5 * 1024**4, "5.0 TiB"),
        (3 * 1024**6, "3072.0 PiB"),
    ],
)
def test_human_bytes(count, text) -> None:
    assert human_bytes(count) == text


# -- the watchdog's state files: only ever kill our own watchdog ---------------------------------


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(watchdog, "state_dir", lambda: tmp_path)
    return tmp_path


def _sleeper(*argv: str) -> subprocess.Popen[bytes]:
    """A process whose command line carries ``argv`` (sys.argv of `python -c`)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    # Popen returns once exec began; the kernel shows the new command line a moment later.
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 5
    while not cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.001)
    return process


def _write_state(key: str, pid: int, seconds: float = 60) -> None:
    state = {"pid": pid, "deadline": time.time() + seconds, "target": "vm1"}
    watchdog.state_file(key).write_text(json.dumps(state))


def test_cancel_kills_only_a_process_that_is_our_watchdog_for_that_key(state_dir) -> None:
    stranger = _sleeper("not-a-watchdog")
    other_key = _sleeper("qgactl.watchdog", "--key", "uuid-other")
    ours = _sleeper("qgactl.watchdog", "--key", "uuid-ours")
    try:
        for key, process in (("uuid-a", stranger), ("uuid-ours-but-pid-b", other_key)):
            _write_state(key, process.pid)
            assert watchdog.pending(key) is None  # not ours: the state file is stale
            assert watchdog.cancel(key) is None
            assert not watchdog.state_file(key).exists()
            assert process.poll() is None  # and it was left alone
        _write_state("uuid-ours", ours.pid)
        found = watchdog.pending("uuid-ours")
        assert found is not None and found.pid == ours.pid and 55 < found.seconds_left <= 60
        assert watchdog.cancel("uuid-ours") == found
        assert ours.wait(5) == -15  # SIGTERM
        assert not watchdog.state_file("uuid-ours").exists()
    finally:
        for process in (stranger, other_key, ours):
            process.kill()
            process.wait()


def test_state_file_of_a_dead_or_unreadable_watchdog_is_dropped(state_dir) -> None:
    dead = _sleeper("qgactl.watchdog", "--key", "uuid-dead")
    dead.kill()
    dead.wait()
    _write_state("uuid-dead", dead.pid)
    assert watchdog.pending("uuid-dead") is None
    assert not watchdog.state_file("uuid-dead").exists()
    watchdog.state_file("uuid-junk").write_text("{not json")
    assert watchdog.pending("uuid-junk") is None
    assert not watchdog.state_file("uuid-junk").exists()


def test_watchdog_refuses_to_start_without_a_trigger() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "qgactl.watchdog", "--ready-fd", "9"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "--seconds, --parent or both" in run.stderr
