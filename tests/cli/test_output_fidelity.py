"""What qgactl shows of a reply, against scripted agents sending real-world replies
(tests/fidelity.py): tables that never cut a value at 60, 80 and 200 columns; -o json that
holds every member of -o raw, unknown ones included; replies that lack mandatory members shown
with one warning; the clock's drift in words.

Each runs qgactl as a real process against the fake's socket.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import fidelity as real
import pytest
from fakeagent import FakeAgent, Scenario, serving

COMMANDS_72 = [
    "guest-info", "guest-ping", "guest-get-osinfo", "guest-get-fsinfo", "guest-get-disks",
    "guest-get-host-name", "guest-get-users", "guest-get-timezone", "guest-get-time",
    "guest-network-get-interfaces", "guest-get-vcpus", "guest-get-memory-blocks",
    "guest-get-memory-block-info", "guest-get-diskstats", "guest-get-cpustats",
    "guest-ssh-get-authorized-keys", "guest-ssh-remove-authorized-keys", "guest-fstrim",
]  # fmt: skip
GUEST_INFO = {
    "version": "10.0.13",
    "supported_commands": [
        {"name": name, "enabled": name != "guest-fstrim", "success-response": True}
        for name in COMMANDS_72
    ],
}


def answering_info(replies: dict[str, Any]) -> dict[str, Any]:
    """``replies`` and a guest-info that lists exactly their commands."""
    listed = [{"name": name, "enabled": True, "success-response": True} for name in replies]
    return {**replies, "guest-info": {"version": "10.0.13", "supported_commands": listed}}


def agent_with(replies: dict[str, Any]) -> Scenario:
    """Syncs, then answers each command with its reply from ``replies`` (a command not there:
    qemu-ga's "has not been found")."""

    def answer(command: str) -> bytes:
        if command not in replies:
            desc = f"The command {command} has not been found"
            message: Any = {"error": {"class": "CommandNotFound", "desc": desc}}
        else:
            message = {"return": replies[command]}
        return json.dumps(message).encode() + b"\n"

    return serving(answer)


def run(qgactl: Any, replies: dict[str, Any], *args: str, columns: str = "") -> Any:
    """qgactl against an agent answering ``replies``; ``columns`` is $COLUMNS ("": unset for
    rich, which then takes 80 in a pipe)."""
    with FakeAgent(agent_with(replies)) as agent:
        return qgactl("--socket", agent.path, "-t", "2", *args, env={"COLUMNS": columns})


# -- tables never cut a value -------------------------------------------------------------------

WINDOWS_SHOWN = [
    "C:\\", "D:\\", *real.WINDOWS_VOLUMES[1:], "\\\\.\\PhysicalDrive0", "sata 0000:00:1f.2",
    "QM00005", "scsi 0000:05:01.0", "drive-scsi0-0-0-1-a1b2c3d4e5f6", "126.5 GiB", "22.8 GiB",
]  # fmt: skip
NVME_SHOWN = [
    *real.NVME_SERIALS, *(f"nvme {pci}" for pci in real.NVME_PCI), "/dev/nvme0n1p1",
    "/dev/nvme1n1", "luks-3f2a6a1e-8c4b-4e6f-9a1d-2b3c4d5e6f70",
]  # fmt: skip
TABLES = {
    "fsinfo-windows": (["fsinfo"], {"guest-get-fsinfo": real.WINDOWS_FSINFO}, WINDOWS_SHOWN),
    "fsinfo-nvme": (
        ["fsinfo"],
        {"guest-get-fsinfo": real.NVME_FSINFO},
        ["/srv/postgresql/16/main", *real.NVME_SERIALS, *real.NVME_PCI, "/dev/nvme0n1p1"],
    ),
    "disks-nvme": (["disks"], {"guest-get-disks": real.NVME_DISKS}, NVME_SHOWN),
    "net-proxmox": (
        ["net"],
        {"guest-network-get-interfaces": real.PROXMOX_INTERFACES},
        [*real.PROXMOX_ADDRESSES, *real.PROXMOX_MACS, "enp65s0f1np1", "wg-mesh-frankfurt0"],
    ),
    "osinfo-windows": (
        ["osinfo"],
        {"guest-get-osinfo": real.WINDOWS_OSINFO},
        ["Windows Server 2022 Datacenter", "Microsoft Windows Server 2022", "mswindows"],
    ),
    "users-windows": (
        ["users"],
        {"guest-get-users": real.WINDOWS_USERS},
        ["Administrator", "CORP-WIN2022-DC01", "2026-12-01 08:22:46"],
    ),
    "info": (["info"], {"guest-info": GUEST_INFO}, COMMANDS_72),
    "guestinfo": (
        ["guestinfo"],
        answering_info(
            {
                "guest-get-osinfo": real.WINDOWS_OSINFO,
                "guest-get-fsinfo": real.WINDOWS_FSINFO,
                "guest-get-disks": real.NVME_DISKS,
                "guest-network-get-interfaces": real.PROXMOX_INTERFACES,
            }
        ),
        [*WINDOWS_SHOWN, *NVME_SHOWN, *real.PROXMOX_ADDRESSES, *real.PROXMOX_MACS],
    ),
}


@pytest.mark.parametrize("columns", [60, 80, 200])
@pytest.mark.parametrize(("args", "replies", "shown"), TABLES.values(), ids=TABLES)
def test_tables_never_cut_a_value(qgactl, args, replies, shown, columns):
    result = run(qgactl, replies, "-o", "table", *args, columns=str(columns))
    assert result.code == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout
    assert max(len(line) for line in lines) <= columns
    # every word of every value whole on a line: not cut, not folded (a cell may wrap
    # between the words of a value, "sata 0000:00:1f.2 serial QM00005", and only there)
    for value in shown:
        for word in value.split():
            assert any(word in line for line in lines), (word, result.stdout)


def test_a_table_that_fits_stays_a_table_and_one_that_does_not_becomes_blocks(qgactl):
    replies = {"guest-network-get-interfaces": real.PROXMOX_INTERFACES}
    wide = run(qgactl, replies, "-o", "table", "net", columns="200").stdout
    assert re.search(r"INTERFACE +MAC +ADDRESSES", wide) and "INTERFACE:" not in wide
    narrow = run(qgactl, replies, "-o", "table", "net", columns="60").stdout
    assert "INTERFACE: vmbr0.20\n" in narrow and "MAC: 3c:ec:ef:8a:9b:2d\n" in narrow
    # a multi-line value stays in line under its first line
    assert "ADDRESSES: 192.168.178.201/24\n           fd8c:4687:e88d:1be3:" in narrow


def test_a_table_into_a_pipe_is_as_wide_as_columns_says_else_80(qgactl):
    replies = {"guest-network-get-interfaces": real.PROXMOX_INTERFACES}
    for columns, width in (("", 80), ("120", 120), ("300", 300)):
        result = run(qgactl, replies, "-o", "table", "net", columns=columns)
        assert result.code == 0, result.stderr
        assert max(len(line) for line in result.stdout.splitlines()) <= width
    # 120 holds the table (about 110 wide): rows, no blocks
    assert "INTERFACE:" not in run(qgactl, replies, "-o", "table", "net", columns="120").stdout
    assert "INTERFACE:" in run(qgactl, replies, "-o", "table", "net").stdout


# -- -o json holds everything -o raw shows ------------------------------------------------------

MEMORY_BLOCKS = [{"phys-index": 1, "online": True, "can-offline": True}]
INFORMATION = {
    "info": (["info"], "guest-info", GUEST_INFO),
    "osinfo": (["osinfo"], "guest-get-osinfo", real.WINDOWS_OSINFO),
    "fsinfo-windows": (["fsinfo"], "guest-get-fsinfo", real.WINDOWS_FSINFO),
    "fsinfo-nvme": (["fsinfo"], "guest-get-fsinfo", real.NVME_FSINFO),
    "disks": (["disks"], "guest-get-disks", real.NVME_DISKS),
    "hostname": (["hostname"], "guest-get-host-name", {"host-name": "pve-fra-01"}),
    "users": (["users"], "guest-get-users", real.WINDOWS_USERS),
    "timezone": (
        ["timezone"],
        "guest-get-timezone",
        {"zone": "W. Europe Standard Time", "offset": 3600},
    ),
    "net": (["net"], "guest-network-get-interfaces", real.PROXMOX_INTERFACES),
    "vcpus": (
        ["vcpus"],
        "guest-get-vcpus",
        [{"logical-id": 1, "online": True, "can-offline": True}, {"logical-id": 0, "online": True}],
    ),
    "load": (["load"], "guest-get-load", {"load1m": 0.5, "load5m": 0.25, "load15m": 0.125}),
    "diskstats": (
        ["diskstats"],
        "guest-get-diskstats",
        [{"name": "nvme0n1", "major": 259, "minor": 0, "stats": {"read-ios": 9, "ios-pgr": 0}}],
    ),
    "cpustats": (
        ["cpustats"],
        "guest-get-cpustats",
        [
            {"type": "linux", "cpu": 0, "user": 7, "nice": 0, "system": 9, "idle": 1524340},
            {"type": "bsd", "cpu": 1, "user": "unknown to qgactl", "intr": 3},
        ],
    ),
    "fstrim": (
        ["fstrim"],
        "guest-fstrim",
        {"paths": [{"path": "/", "trimmed": 4096, "minimum": 0}, {"path": "/boot", "error": "x"}]},
    ),
}
RAW_SHAPE = {  # where -o json puts a reply that is not an object: the documented place
    "guest-fstrim": lambda raw: raw["paths"],
}


@pytest.mark.parametrize("future", [False, True], ids=["as-modelled", "newer-agent"])
@pytest.mark.parametrize(("args", "command", "reply"), INFORMATION.values(), ids=INFORMATION)
def test_json_holds_every_member_of_the_raw_reply(qgactl, args, command, reply, future):
    replies = {command: real.with_future(reply) if future else reply}
    raw = run(qgactl, replies, "-o", "raw", *args)
    data = run(qgactl, replies, "-o", "json", *args)
    assert raw.code == 0 and data.code == 0, (raw.stderr, data.stderr)
    sent = json.loads(raw.stdout)["return"]
    assert sent == replies[command]  # -o raw is the agent's reply, untouched
    real.assert_superset(RAW_SHAPE.get(command, lambda raw: raw)(sent), data.json())
    if future:
        assert "x-future-member" in data.stdout and "x_future_member" not in data.stdout


def test_json_of_the_commands_of_several_calls_holds_every_member(qgactl):
    replies = real.with_future(
        {"guest-get-memory-blocks": MEMORY_BLOCKS, "guest-get-memory-block-info": {"size": 1 << 27}}
    )
    data = run(qgactl, replies, "-o", "json", "memory").json()
    real.assert_superset(replies["guest-get-memory-blocks"], data["blocks"])
    real.assert_superset(replies["guest-get-memory-block-info"], data)
    nanoseconds = 1796113366_123456789
    data = run(qgactl, {"guest-get-time": nanoseconds}, "-o", "json", "time").json()
    assert data["nanoseconds"] == nanoseconds
    keys = {"keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEexampleEXAMPLE admin@ws"]}
    replies = answering_info({"guest-ssh-get-authorized-keys": real.with_future(keys)})
    data = run(qgactl, replies, "-o", "json", "ssh-keys", "root").json()
    real.assert_superset(replies["guest-ssh-get-authorized-keys"], data)


def test_guestinfo_json_holds_every_member_of_each_part(qgactl):
    parts = {
        "os": ("guest-get-osinfo", real.WINDOWS_OSINFO),
        "fs": ("guest-get-fsinfo", real.WINDOWS_FSINFO),
        "disks": ("guest-get-disks", real.NVME_DISKS),
        "net": ("guest-network-get-interfaces", real.PROXMOX_INTERFACES),
        "users": ("guest-get-users", real.WINDOWS_USERS),
    }
    replies = answering_info(
        {command: real.with_future(reply) for command, reply in parts.values()}
    )
    data = run(qgactl, replies, "-o", "json", "guestinfo").json()
    for part, (command, _) in parts.items():
        real.assert_superset(replies[command], data[part])
    assert data["os"]["variant_id"] == "server"


# -- replies that lack members the schema calls mandatory ------------------------------------


@pytest.mark.parametrize(
    ("args", "replies", "lacking", "shown"),
    [
        (  # an agent whose disks have only a serial and a bus type
            ["disks"],
            {"guest-get-disks": [{"address": {"serial": "QM00001", "bus-type": "sata"}}]},
            "guest-get-disks: reply lacks name, partition, address.pci-controller, "
            "address.bus, address.target, address.unit",
            "QM00001",
        ),
        (
            ["fsinfo"],
            {
                "guest-get-fsinfo": [
                    {"name": "sda1", "disk": [{"serial": "QM1", "bus-type": "ide"}]}
                ]
            },
            "guest-get-fsinfo: reply lacks mountpoint, type, disk.pci-controller, disk.bus, "
            "disk.target, disk.unit",
            "QM1",
        ),
        (  # a version and no command list
            ["info"],
            {"guest-info": {"version": "5.2.0-patched"}},
            "guest-info: reply lacks supported_commands",
            "5.2.0-patched",
        ),
        (
            ["net"],
            {"guest-network-get-interfaces": [{"ip-addresses": [{"ip-address": "10.0.0.7"}]}]},
            "guest-network-get-interfaces: reply lacks name, ip-addresses.ip-address-type, "
            "ip-addresses.prefix",
            "10.0.0.7",
        ),
        (
            ["vcpus"],
            {"guest-get-vcpus": [{"logical-id": 3}, {"online": False}]},
            "guest-get-vcpus: reply lacks online, logical-id",
            "3",
        ),
    ],
)
@pytest.mark.parametrize("output", ["table", "json"])
def test_a_reply_lacking_members_is_shown_with_one_warning(
    qgactl, args, replies, lacking, shown, output
):
    result = run(qgactl, replies, "-o", output, *args, columns="200")
    assert result.code == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("qgactl: warning: ") and line.endswith(f"{lacking} (shown empty)")
    assert shown in result.stdout
    if output == "json":
        assert "null" in result.stdout


def test_each_target_of_several_warns_on_its_own_line(qgactl):
    lacking = {"guest-get-timezone": {"zone": "UTC"}}
    whole = {"guest-get-timezone": {"zone": "CET", "offset": 3600}}
    with FakeAgent(agent_with(lacking)) as first, FakeAgent(agent_with(whole)) as second:
        result = qgactl("--socket", first.path, "--socket", second.path, "-o", "json", "timezone")
    assert result.code == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line == (
        f"qgactl: warning: {first.path}: guest-get-timezone: reply lacks offset (shown empty)"
    )
    assert [entry["offset"] for entry in result.json()] == [None, 3600]


def test_guestinfo_of_an_agent_without_a_command_list_asks_for_each_part(qgactl):
    replies = {
        "guest-info": {"version": "5.2.0-patched"},
        "guest-get-host-name": {"host-name": "old-agent"},
        "guest-get-timezone": {"zone": "UTC", "offset": 0},
    }
    result = run(qgactl, replies, "-o", "json", "guestinfo")
    assert result.code == 0, result.stderr
    assert result.json() == {
        "hostname": {"host_name": "old-agent"},
        "timezone": {"zone": "UTC", "offset": 0},
    }
    [line] = result.stderr.splitlines()
    assert "guest-info: reply lacks supported_commands" in line


@pytest.mark.parametrize(
    ("args", "command", "reply"),
    [
        (["osinfo"], "guest-get-osinfo", []),  # a list where an object belongs
        (["timezone"], "guest-get-timezone", {"zone": "UTC", "offset": "3600"}),
        (["disks"], "guest-get-disks", [{"name": "sda", "partition": False, "address": "sata"}]),
        (["info"], "guest-info", {"version": "1", "supported_commands": {"guest-ping": True}}),
    ],
)
def test_a_reply_that_is_not_the_shape_is_still_a_protocol_error(qgactl, args, command, reply):
    result = run(qgactl, {command: reply}, *args)
    assert result.code == 7 and result.stdout == "", result.stderr
    [line] = result.stderr.splitlines()
    assert "unexpected reply from the agent" in line


# -- the clock's drift in words -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "wording"),
    [
        (-0.755, r"behind the host by 7[45]\d ms"),
        (90.0, r"ahead of the host by 1 min (29|30|31) s"),
        (-103501855.304, r"behind the host by 1197 days 22 h"),
    ],
)
def test_time_says_ahead_or_behind_in_a_readable_unit(qgactl, offset, wording):
    def reply() -> int:
        return time.time_ns() + int(offset * 1e9)

    with FakeAgent(
        serving(lambda command: json.dumps({"return": reply()}).encode() + b"\n")
    ) as agent:
        table = qgactl("--socket", agent.path, "-o", "table", "time", env={"COLUMNS": "200"})
        data = qgactl("--socket", agent.path, "-o", "json", "time")
    assert table.code == 0 and data.code == 0, (table.stderr, data.stderr)
    assert re.search(wording, table.stdout), table.stdout
    assert "Ahead of the host by -" not in table.stdout
    assert abs(data.json()["drift_seconds"] - offset) < 1  # JSON: seconds, signed, numeric
