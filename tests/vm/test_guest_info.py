"""The information commands on the real lab guest, each checked against virsh on the same
guest (domhostname/domifaddr --source agent, domtime, guestinfo, guestvcpus) or against a raw
agent call that bypasses qgactl; and guestinfo's two ways of gathering (libvirt's
virDomainGetGuestInfo, agent calls over the guest's dedicated socket) against each other.

The lab guest reports real data (lab/lab.py): 2 vCPUs, eth0 52:54:00:12:34:56 with 10.0.2.15/24
and an fe80:: address, user qgauser logged in, time zone IST (+05:30). Its qemu-ga 10.0
flavour (lab_domain10, plain_qemu_guest10) adds guest-get-load and guest-network-get-route.

time --set/--sync and vcpus --enable/--disable change the guest: only the lab domain's, and
the test puts the clock (or the vCPU) back whatever happens.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from fidelity import assert_superset
from guestside import libvirt_raw

from lab import lab


def virsh(domain: lab.LabDomain, *args: str) -> str:
    command = ["virsh", "-c", domain.uri, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


def virsh_fields(domain: lab.LabDomain, *args: str) -> dict[str, str]:
    """virsh's "name : value" lines (guestinfo, guestvcpus) as a dict."""
    lines = virsh(domain, *args).splitlines()
    return dict((part.strip() for part in line.split(":", 1)) for line in lines if ":" in line)


def qgactl_json(qgactl: Any, domain: lab.LabDomain, command: str, *args: str, via="libvirt") -> Any:
    result = qgactl("-c", domain.uri, "--transport", via, "-o", "json", command, domain, *args)
    assert result.code == 0, result.stderr
    return result.json()


@pytest.fixture(scope="module")
def raw(lab_domain: lab.LabDomain, conn: Any) -> Any:
    """An agent call through libvirt-python, not through qgactl."""
    assert lab_domain.startswith("qgactl-test-")  # a lab guest, never the host
    return libvirt_raw(conn.lookupByName(lab_domain))


def test_hostname_is_virsh_domhostname(qgactl, lab_domain) -> None:
    expected = virsh(lab_domain, "domhostname", "--source", "agent", lab_domain).strip()
    assert qgactl_json(qgactl, lab_domain, "hostname") == {"host_name": expected}
    assert expected  # the lab guest has one


def test_net_is_virsh_domifaddr(qgactl, lab_domain) -> None:
    """Every (interface, MAC, address/prefix) virsh lists, qgactl lists, and no other."""
    rows = set()
    name = mac = None
    for line in virsh(lab_domain, "domifaddr", "--source", "agent", lab_domain).splitlines()[2:]:
        if not line.strip():
            continue
        first, second, _protocol, address = line.split()
        name, mac = (name, mac) if first == "-" else (first, second)
        rows.add((name, mac, address))
    interfaces = qgactl_json(qgactl, lab_domain, "net")
    ours = {
        (i["name"], i["hardware_address"], f"{a['address']}/{a['prefix']}")
        for i in interfaces
        for a in i["addresses"]
    }
    assert ours == rows and ("lo", "00:00:00:00:00:00", "127.0.0.1/8") in rows
    assert ("eth0", "52:54:00:12:34:56", "10.0.2.15/24") in rows
    assert any(row[0] == "eth0" and row[2].startswith("fe80::") for row in rows)
    assert all(i["statistics"] is not None for i in interfaces)  # qemu-ga 7.2 sends them


def test_time_is_virsh_domtime(qgactl, lab_domain) -> None:
    clock = qgactl_json(qgactl, lab_domain, "time")
    virsh_seconds = int(virsh(lab_domain, "domtime", lab_domain).split(":")[1])
    assert abs(clock["nanoseconds"] / 1e9 - virsh_seconds) < 5
    assert abs(clock["drift_seconds"]) < 60  # a freshly booted guest: about the host's time


def test_guestinfo_parts_are_virsh_guestinfo(qgactl, lab_domain) -> None:
    fields = virsh_fields(
        lab_domain, "guestinfo", "--user", "--os", "--timezone", "--filesystem", lab_domain
    )
    info = qgactl_json(qgactl, lab_domain, "guestinfo", "--users", "--os", "--timezone", "--fs")
    assert set(info) == {"users", "os", "timezone", "fs"}
    assert len(info["users"]) == int(fields["user.count"]) >= 1
    assert "qgauser" in [user["user"] for user in info["users"]]
    assert (info["timezone"]["zone"], info["timezone"]["offset"]) == ("IST", 19800)
    for index, user in enumerate(info["users"]):
        assert user["user"] == fields[f"user.{index}.name"]
        assert round(user["login_time"] * 1000) == int(fields[f"user.{index}.login-time"])
    for key, value in info["os"].items():
        virsh_key = "os." + key.replace("_", "-")
        assert fields.get(virsh_key) == value, key  # None where virsh shows nothing
    assert (info["timezone"]["zone"], str(info["timezone"]["offset"])) == (
        fields["timezone.name"],
        fields["timezone.offset"],
    )
    assert len(info["fs"]) == int(fields["fs.count"]) >= 1
    for index, fs in enumerate(info["fs"]):
        assert (fs["mountpoint"], fs["name"], fs["type"]) == (
            fields[f"fs.{index}.mountpoint"],
            fields[f"fs.{index}.name"],
            fields[f"fs.{index}.fstype"],
        )
        assert str(fs["used_bytes"]) == fields[f"fs.{index}.used-bytes"]
        assert [d["dev"] for d in fs["disks"]] == [
            fields.get(f"fs.{index}.disk.{n}.device") for n in range(len(fs["disks"]))
        ]


def _comparable(info: dict[str, Any]) -> dict[str, Any]:
    """What both ways of gathering know: libvirt gives no bus addresses, no interface
    counters, no total_bytes_privileged (qemu-ga 9.1+); used space may change between the two
    calls."""
    info = json.loads(json.dumps(info))
    for fs in info["fs"]:
        fs["used_bytes"] = fs["total_bytes_privileged"] = None
        fs["disks"] = [{"serial": d["serial"], "dev": d["dev"]} for d in fs["disks"]]
    for disk in info["disks"]:
        disk["address"] = disk["address"] and disk["address"]["serial"]
    for interface in info["net"]:
        interface["statistics"] = None
    return info


def test_guestinfo_through_libvirt_and_through_the_socket_agree(qgactl, lab_domain) -> None:
    """The lab domain's .0 channel is libvirt's (virDomainGetGuestInfo); its dedicated .1
    socket gets agent calls: two agents of one guest, one shape of JSON."""
    through_libvirt = qgactl_json(qgactl, lab_domain, "guestinfo")
    through_socket = qgactl_json(qgactl, lab_domain, "guestinfo", via="socket")
    assert set(through_libvirt) == set(through_socket) >= {"os", "hostname", "fs", "vcpus"}
    assert "load" not in through_libvirt  # qemu-ga 7.2 has no guest-get-load: left out
    assert through_socket["disks"][0]["address"]["bus_type"] == "virtio"
    assert through_libvirt["disks"][0]["address"] is None  # no serial on the lab's disk
    assert _comparable(through_libvirt) == _comparable(through_socket)


def test_guestinfo_debug_trace_shows_one_libvirt_call(qgactl, lab_domain) -> None:
    """Through libvirt the seven parts are one virDomainGetGuestInfo, plus guest-info and the
    vcpus libvirt doesn't gather."""
    result = qgactl("-c", lab_domain.uri, "--debug", "-o", "json", "guestinfo", lab_domain)
    assert result.code == 0, result.stderr
    sent = [line for line in result.stderr.splitlines() if line.startswith("-->")]
    assert len(sent) == 3, sent
    assert "guest-info" in sent[0] and "virDomainGetGuestInfo" in sent[1]
    assert "guest-get-vcpus" in sent[2]


def test_vcpus_are_virsh_guestvcpus(qgactl, lab_domain) -> None:
    fields = virsh_fields(lab_domain, "guestvcpus", lab_domain)
    vcpus = qgactl_json(qgactl, lab_domain, "vcpus")
    assert [v["logical_id"] for v in vcpus] == _cpu_ids(fields["vcpus"]) == [0, 1]
    assert [v["logical_id"] for v in vcpus if v["online"]] == _cpu_ids(fields["online"])
    assert [v["logical_id"] for v in vcpus if v["can_offline"]] == _cpu_ids(fields["offlinable"])


def _cpu_ids(bitmap: str) -> list[int]:
    """virsh's CPU bitmap text ("0-1,3") -> ids."""
    ids: list[int] = []
    for item in filter(None, bitmap.split(",")):
        first, _, last = item.partition("-")
        ids += range(int(first), int(last or first) + 1)
    return ids


def test_offlining_cpu_0_is_the_guests_refusal(qgactl, lab_domain) -> None:
    before = virsh_fields(lab_domain, "guestvcpus", lab_domain)["online"]
    result = qgactl("-c", lab_domain.uri, "vcpus", lab_domain, "--disable", "0")
    assert result.code == 6, result.stderr
    assert "can't be offlined" in result.stderr and "Traceback" not in result.stderr
    assert virsh_fields(lab_domain, "guestvcpus", lab_domain)["online"] == before


def test_vcpus_disable_and_enable_cpu_1(qgactl, lab_domain, raw) -> None:
    """The change is what virsh guestvcpus sees afterwards; cpu 1 is online again at the end."""
    args = ("-c", lab_domain.uri, "-o", "json", "vcpus", lab_domain)
    try:
        result = qgactl(*args, "--disable", "1")
        assert result.code == 0, result.stderr
        assert "took offline 1 vCPU" in result.stderr
        assert [(v["logical_id"], v["online"]) for v in result.json()] == [(0, True), (1, False)]
        assert virsh_fields(lab_domain, "guestvcpus", lab_domain)["online"] == "0"

        result = qgactl(*args, "--enable", "0-1")  # cpu 0 is online already: a no-op for it
        assert result.code == 0, result.stderr
        assert all(v["online"] for v in result.json())
        assert virsh_fields(lab_domain, "guestvcpus", lab_domain)["online"] == "0-1"
    finally:
        raw("guest-set-vcpus", {"vcpus": [{"logical-id": 1, "online": True}]})


def test_cpustats_one_entry_per_online_vcpu(qgactl, lab_domain, raw) -> None:
    online = [v["logical-id"] for v in raw("guest-get-vcpus", None) if v["online"]]
    stats = qgactl_json(qgactl, lab_domain, "cpustats")
    assert sorted(s["cpu"] for s in stats) == sorted(online)
    assert all(s["type"] == "linux" and s["user"] + s["system"] + s["idle"] > 0 for s in stats)


def test_diskstats_match_the_guests_proc_diskstats(qgactl, lab_domain, raw) -> None:
    stats = {d["name"]: d for d in qgactl_json(qgactl, lab_domain, "diskstats")}
    vda = stats["vda"]
    line = _guest_file(raw, "/proc/diskstats")
    [fields] = [f.split() for f in line.splitlines() if f.split()[2:3] == ["vda"]]
    assert (vda["major"], vda["minor"]) == (int(fields[0]), int(fields[1]))
    assert 0 < vda["stats"]["read_ios"] <= int(fields[3]) + 1000  # it only grows


def test_memory_blocks_cover_the_domains_memory(qgactl, lab_domain, conn) -> None:
    memory = qgactl_json(qgactl, lab_domain, "memory")
    kib = conn.lookupByName(lab_domain).maxMemory()
    assert memory["block_size"] > 0 and memory["blocks"]
    assert [b["phys_index"] for b in memory["blocks"]] == sorted(
        b["phys_index"] for b in memory["blocks"]
    )
    assert abs(memory["online_bytes"] - kib * 1024) <= memory["block_size"]


def test_users_and_timezone_are_the_agents(qgactl, lab_domain, raw) -> None:
    users = qgactl_json(qgactl, lab_domain, "users")
    assert [(u["user"], u["login_time"]) for u in users] == [
        (u["user"], u["login-time"]) for u in raw("guest-get-users", None)
    ]
    assert "qgauser" in [u["user"] for u in users]
    zone = raw("guest-get-timezone", None)
    assert qgactl_json(qgactl, lab_domain, "timezone") == {
        "zone": zone.get("zone"),
        "offset": zone["offset"],
    }


@pytest.mark.parametrize(
    ("args", "command", "release"),
    [(["load"], "guest-get-load", "10.0"), (["net", "--routes"], "guest-network-get-route", "9.1")],
)
def test_what_qemu_ga_72_lacks_is_named_with_its_release(
    qgactl, lab_domain, args, command, release
):
    result = qgactl("-c", lab_domain.uri, args[0], lab_domain, *args[1:])
    assert result.code == 6, result.stderr
    [line] = result.stderr.splitlines()
    assert command in line and f"added in qemu-ga {release}" in line


def test_socket_guest_answers_the_same_commands(qgactl, plain_qemu_guest) -> None:
    """Bare QEMU, no libvirt: every information command over the socket."""
    socket = str(plain_qemu_guest.socket_path)
    for command in ("hostname", "users", "timezone", "time", "net", "vcpus", "memory",
                    "diskstats", "cpustats", "guestinfo"):  # fmt: skip
        result = qgactl("--socket", socket, "-o", "json", command)
        assert result.code == 0, (command, result.stderr)
        assert result.json() is not None
        table = qgactl("--socket", socket, "-o", "table", command)
        assert table.code == 0 and table.stdout.strip(), (command, table.stderr)


# -- changing the guest: its clock ----------------------------------------------------------------


def _guest_seconds(domain: lab.LabDomain) -> int:
    return int(virsh(domain, "domtime", domain).split(":")[1])


@pytest.fixture
def clock_restored(lab_domain: lab.LabDomain, raw: Any) -> Any:
    """The lab guest's clock set back to the host's afterwards, without qgactl."""
    yield lab_domain
    raw("guest-set-time", {"time": time.time_ns()})
    assert abs(_guest_seconds(lab_domain) - time.time()) < 5


def test_time_set_then_sync(qgactl, clock_restored) -> None:
    domain = clock_restored
    result = qgactl("-c", domain.uri, "-o", "json", "time", domain, "--set", "2001-02-03T04:05:06Z")
    assert result.code == 0, result.stderr
    assert result.json()["utc"].startswith("2001-02-03T04:05:0")
    assert abs(_guest_seconds(domain) - 981173106) < 10  # virsh domtime sees it too

    synced = qgactl("-c", domain.uri, "-o", "json", "time", domain, "--sync")
    assert synced.code == 0, synced.stderr
    assert abs(synced.json()["drift_seconds"]) < 2
    assert abs(_guest_seconds(domain) - time.time()) < 5


def test_time_set_in_seconds_with_a_fraction(qgactl, clock_restored) -> None:
    domain = clock_restored
    result = qgactl("-c", domain.uri, "-o", "json", "time", domain, "--set", "1500000000.5")
    assert result.code == 0, result.stderr
    assert 1500000000 <= _guest_seconds(domain) < 1500000010


# -- qemu-ga 10.0: load and routes ---------------------------------------------------------------


@pytest.fixture(scope="module")
def raw10(lab_domain10: lab.LabDomain, conn: Any) -> Any:
    assert lab_domain10.startswith("qgactl-test-")
    return libvirt_raw(conn.lookupByName(lab_domain10))


def test_load_is_the_guests_proc_loadavg(qgactl, lab_domain10, raw10) -> None:
    load = qgactl_json(qgactl, lab_domain10, "load")
    proc = [float(value) for value in _guest_file(raw10, "/proc/loadavg").split()[:3]]
    assert set(load) == {"load1m", "load5m", "load15m"}
    for ours, theirs in zip((load["load1m"], load["load5m"], load["load15m"]), proc):
        assert abs(ours - theirs) < 1.0  # both move; read a moment apart


def test_routes_are_the_guests_proc_net_route(qgactl, lab_domain10, raw10) -> None:
    """IPv4 routes against /proc/net/route (hex, little-endian); IPv6 ones are there too."""
    data = qgactl_json(qgactl, lab_domain10, "net", "--routes")
    assert {i["name"] for i in data["interfaces"]} >= {"lo", "eth0"}
    ours = {
        (r["iface"], r["destination"], r["gateway"], r["mask"], r["metric"])
        for r in data["routes"]
        if r["version"] == 4
    }
    theirs = set()
    for line in _guest_file(raw10, "/proc/net/route").splitlines()[1:]:
        iface, dest, gateway, _flags, _refcnt, _use, metric, mask = line.split()[:8]
        theirs.add((iface, _ipv4(dest), _ipv4(gateway), _ipv4(mask), int(metric)))
    assert ours == theirs and any(r[0] == "eth0" for r in ours)
    assert any(r["version"] == 6 and r["destination"].startswith("fe80::") for r in data["routes"])
    table = qgactl("-c", lab_domain10.uri, "-o", "table", "net", lab_domain10, "--routes")
    assert table.code == 0 and "DESTINATION" in table.stdout and "10.0.2.0/" in table.stdout


def _ipv4(little_endian_hex: str) -> str:
    import socket
    import struct

    return socket.inet_ntoa(struct.pack("<I", int(little_endian_hex, 16)))


def test_guestinfo_of_qemu_ga_10_includes_load_both_ways(qgactl, lab_domain10) -> None:
    through_libvirt = qgactl_json(qgactl, lab_domain10, "guestinfo")
    through_socket = qgactl_json(qgactl, lab_domain10, "guestinfo", via="socket")
    [fs] = through_socket["fs"]
    assert fs["total_bytes_privileged"] >= fs["total_bytes"]  # 9.1+: root's reserve too
    assert through_libvirt["fs"][0]["total_bytes_privileged"] is None  # libvirt has no such
    assert "load" in through_libvirt and "load" in through_socket
    for info in (through_libvirt, through_socket):
        del info["load"]  # it moves between the two calls
    assert _comparable(through_libvirt) == _comparable(through_socket)
    assert "qgauser" in [u["user"] for u in through_libvirt["users"]]


def test_qemu_ga_10_over_a_socket(qgactl, plain_qemu_guest10) -> None:
    socket = str(plain_qemu_guest10.socket_path)
    for args in (["load"], ["net", "--routes"], ["guestinfo", "--load", "--vcpus"]):
        result = qgactl("--socket", socket, "-o", "json", *args)
        assert result.code == 0, (args, result.stderr)
    assert set(result.json()) == {"load", "vcpus"} and len(result.json()["vcpus"]) == 2


def _guest_file(raw: Any, path: str) -> str:
    """A guest file read through raw guest-file-* calls (not qgactl)."""
    import base64

    handle = raw("guest-file-open", {"path": path, "mode": "r"})
    try:
        chunk = raw("guest-file-read", {"handle": handle, "count": 65536})
    finally:
        raw("guest-file-close", {"handle": handle})
    return base64.b64decode(chunk["buf-b64"]).decode()


# -- -o json holds every member of -o raw, on both agent releases -----------------------------

MOVING = {"time", "net", "diskstats", "cpustats", "fsinfo", "load"}  # counters move between calls
INFORMATION = [
    "info", "osinfo", "fsinfo", "disks", "hostname", "users", "timezone", "time", "net",
    "vcpus", "diskstats", "cpustats",
]  # fmt: skip


@pytest.mark.parametrize("flavour", ["7.2", "10.0"])
def test_json_holds_every_member_the_agent_sent(qgactl, request, flavour) -> None:
    domain = request.getfixturevalue("lab_domain" if flavour == "7.2" else "lab_domain10")
    for command in INFORMATION + (["load"] if flavour == "10.0" else []):
        raw = qgactl("-c", domain.uri, "-o", "raw", command, domain)
        data = qgactl("-c", domain.uri, "-o", "json", command, domain)
        assert raw.code == 0 and data.code == 0, (command, raw.stderr, data.stderr)
        assert data.stderr == "", (command, data.stderr)  # qemu-ga's replies lack nothing
        reply = json.loads(raw.stdout)["return"]
        if command == "time":
            reply = {"nanoseconds": reply}
        assert reply, f"{command}: the guest answered nothing to compare"
        assert_superset(reply, data.json(), values=command not in MOVING)
    # the lab's os-release has a VARIANT_ID: osinfo and guestinfo's OS part (gathered by
    # libvirt's virDomainGetGuestInfo) keep it
    assert qgactl_json(qgactl, domain, "osinfo")["variant_id"] in ("host", "qga10")
    osinfo = json.loads(qgactl("-c", domain.uri, "-o", "raw", "osinfo", domain).stdout)
    assert_superset(osinfo["return"], qgactl_json(qgactl, domain, "guestinfo", "--os")["os"])
