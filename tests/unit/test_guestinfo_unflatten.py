"""libvirt's virDomainGetGuestInfo typed parameters unflattened into the agent's models.

LAB_72 is what libvirt 9.0 returned for the first lab guest (qemu-ga 7.2) with types=0,
LAB_100 for the lab guest with real data and qemu-ga 10.0; RICH adds what neither has (a
Windows user, serials, dependencies, a guest alias, an interface without a MAC), with
libvirt's own names (src/libvirt-domain.c, virDomainGetGuestInfo).
"""

from __future__ import annotations

import pytest

from qgactl.errors import ProtocolError
from qgactl.guestinfo import PART_NAMES, PARTS, unflatten, unflatten_guest_info
from qgactl.models import GuestInfo

LIBVIRT_PARTS = [part.name for part in PARTS if part.libvirt_flag]

LAB_72 = {
    "user.count": 0,
    "os.id": "qgactllab", "os.name": "qgactl lab", "os.pretty-name": "qgactl lab 1",
    "os.version": "1 (test guest)", "os.version-id": "1", "os.machine": "x86_64",
    "os.kernel-release": "6.1.0-50-amd64",
    "os.kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)",
    "timezone.name": "UTC", "timezone.offset": 0,
    "hostname": "qgactl-lab",
    "fs.count": 1, "fs.0.name": "vda", "fs.0.mountpoint": "/mnt/data", "fs.0.fstype": "ext4",
    "fs.0.total-bytes": 13237248, "fs.0.used-bytes": 15360, "fs.0.disk.count": 1,
    "fs.0.disk.0.alias": "vda", "fs.0.disk.0.device": "/dev/vda",
    "disk.count": 1, "disk.0.name": "/dev/vda", "disk.0.partition": False, "disk.0.alias": "vda",
    "if.count": 1, "if.0.name": "lo", "if.0.hwaddr": "00:00:00:00:00:00", "if.0.addr.count": 2,
    "if.0.addr.0.type": "ipv4", "if.0.addr.0.addr": "127.0.0.1", "if.0.addr.0.prefix": 8,
    "if.0.addr.1.type": "ipv6", "if.0.addr.1.addr": "::1", "if.0.addr.1.prefix": 128,
}  # fmt: skip

LAB_100 = {
    "user.count": 1,
    "user.0.name": "qgauser",
    "user.0.login-time": 1796121359000,
    "os.id": "qgactllab",
    "os.name": "qgactl lab",
    "os.pretty-name": "qgactl lab 1",
    "os.version": "1 (test guest)",
    "os.version-id": "1",
    "os.machine": "x86_64",
    "os.variant": "qga10 agent",
    "os.variant-id": "qga10",
    "os.kernel-release": "6.1.0-50-amd64",
    "os.kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)",
    "timezone.name": "IST",
    "timezone.offset": 19800,
    "hostname": "qgactl-lab",
    "fs.count": 1,
    "fs.0.name": "vda",
    "fs.0.mountpoint": "/mnt/data",
    "fs.0.fstype": "ext4",
    "fs.0.total-bytes": 13237248,
    "fs.0.used-bytes": 15360,
    "fs.0.disk.count": 1,
    "fs.0.disk.0.alias": "vda",
    "fs.0.disk.0.device": "/dev/vda",
    "disk.count": 1,
    "disk.0.name": "/dev/vda",
    "disk.0.partition": False,
    "disk.0.alias": "vda",
    "if.count": 2,
    "if.0.name": "lo",
    "if.0.hwaddr": "00:00:00:00:00:00",
    "if.0.addr.count": 2,
    "if.0.addr.0.type": "ipv4",
    "if.0.addr.0.addr": "127.0.0.1",
    "if.0.addr.0.prefix": 8,
    "if.0.addr.1.type": "ipv6",
    "if.0.addr.1.addr": "::1",
    "if.0.addr.1.prefix": 128,
    "if.1.name": "eth0",
    "if.1.hwaddr": "52:54:00:12:34:56",
    "if.1.addr.count": 2,
    "if.1.addr.0.type": "ipv4",
    "if.1.addr.0.addr": "10.0.2.15",
    "if.1.addr.0.prefix": 24,
    "if.1.addr.1.type": "ipv6",
    "if.1.addr.1.addr": "fe80::5054:ff:fe12:3456",
    "if.1.addr.1.prefix": 64,
}

RICH = {
    "user.count": 2,
    "user.0.name": "root", "user.0.login-time": 1796113366250,
    "user.1.name": "Administrator", "user.1.domain": "WIN-1", "user.1.login-time": 1796113000000,
    "timezone.name": "IST", "timezone.offset": 19800,
    "fs.count": 1, "fs.0.name": "dm-0", "fs.0.mountpoint": "/", "fs.0.fstype": "xfs",
    "fs.0.disk.count": 2,
    "fs.0.disk.0.alias": "vda", "fs.0.disk.0.serial": "SER-A", "fs.0.disk.0.device": "/dev/vda2",
    "fs.0.disk.1.serial": "SER-B",
    "disk.count": 2,
    "disk.0.name": "/dev/vda", "disk.0.partition": False, "disk.0.serial": "SER-A",
    "disk.0.alias": "vda",
    "disk.1.name": "/dev/dm-0", "disk.1.partition": False, "disk.1.dependency.count": 2,
    "disk.1.dependency.0.name": "/dev/vda2", "disk.1.dependency.1.name": "/dev/vdb1",
    "disk.1.guest_alias": "rhel-root",
    "if.count": 2,
    "if.0.name": "lo", "if.0.addr.count": 0,
    "if.1.name": "eth0", "if.1.hwaddr": "52:54:00:12:34:56", "if.1.addr.count": 2,
    "if.1.addr.1.type": "ipv6", "if.1.addr.1.addr": "fe80::5054:ff:fe12:3456",
    "if.1.addr.1.prefix": 64,
    "if.1.addr.0.type": "ipv4", "if.1.addr.0.addr": "10.0.2.15", "if.1.addr.0.prefix": 24,
}  # fmt: skip


def test_unflatten_nests_and_orders_by_index() -> None:
    tree = unflatten({"a.count": 2, "a.1.x": "second", "a.0.x": "first", "a.0.b.0.y": 1, "c": 3})
    assert tree == {"a": [{"x": "first", "b": [{"y": 1}]}, {"x": "second"}], "c": 3}


def test_the_lab_guests_parameters_become_the_agents_models() -> None:
    found = unflatten_guest_info(LAB_72, LIBVIRT_PARTS)
    info = GuestInfo(**found)
    assert info.os is not None and info.os.pretty_name == "qgactl lab 1"
    assert info.os.kernel_release == "6.1.0-50-amd64" and info.os.variant is None
    assert info.hostname is not None and info.hostname.host_name == "qgactl-lab"
    assert info.users == ()
    assert info.timezone is not None and (info.timezone.zone, info.timezone.offset) == ("UTC", 0)
    [fs] = info.fs or ()
    assert (fs.name, fs.mountpoint, fs.type, fs.used_bytes, fs.total_bytes) == (
        "vda", "/mnt/data", "ext4", 15360, 13237248,
    )  # fmt: skip
    [address] = fs.disks
    assert (address.dev, address.serial, address.bus_type) == ("/dev/vda", None, None)
    [disk] = info.disks or ()
    assert (disk.name, disk.partition, disk.address, disk.alias) == ("/dev/vda", False, None, None)
    [lo] = info.net or ()
    assert [(a.address, a.prefix) for a in lo.addresses] == [("127.0.0.1", 8), ("::1", 128)]
    assert lo.statistics is None
    assert set(info.to_json()) == set(LIBVIRT_PARTS)


def test_the_qemu_ga_10_guest_with_a_user_and_eth0() -> None:
    info = GuestInfo(**unflatten_guest_info(LAB_100, LIBVIRT_PARTS))
    assert [(u.user, u.login_time) for u in info.users or ()] == [("qgauser", 1796121359.0)]
    assert info.os is not None and info.os.variant == "qga10 agent"
    [lo, eth0] = info.net or ()
    assert lo.name == "lo" and (eth0.name, eth0.hardware_address) == ("eth0", "52:54:00:12:34:56")
    assert [(a.address, a.prefix) for a in eth0.addresses] == [
        ("10.0.2.15", 24),
        ("fe80::5054:ff:fe12:3456", 64),
    ]
    assert info.timezone is not None and info.timezone.offset == 19800


def test_users_serials_dependencies_and_addresses() -> None:
    found = unflatten_guest_info(RICH, ["users", "timezone", "fs", "disks", "net"])
    root, admin = found["users"]
    assert (root.user, root.domain, root.login_time) == ("root", None, 1796113366.25)  # ms -> s
    assert (admin.user, admin.domain) == ("Administrator", "WIN-1")
    assert found["timezone"].offset == 19800
    [fs] = found["fs"]
    assert [(d.serial, d.dev) for d in fs.disks] == [("SER-A", "/dev/vda2"), ("SER-B", None)]
    assert fs.used_bytes is None  # older agents: libvirt leaves the sizes out
    vda, dm0 = found["disks"]
    assert vda.address is not None and vda.address.serial == "SER-A"
    assert vda.alias is None  # disk.0.alias is libvirt's name for it, not the guest's
    assert dm0.dependencies == ("/dev/vda2", "/dev/vdb1") and dm0.alias == "rhel-root"
    lo, eth0 = found["net"]
    assert lo.addresses == () and lo.hardware_address is None
    assert [(a.type, a.address) for a in eth0.addresses] == [
        ("ipv4", "10.0.2.15"),
        ("ipv6", "fe80::5054:ff:fe12:3456"),
    ]


def test_only_the_parts_asked_for() -> None:
    assert set(unflatten_guest_info(RICH, ["users"])) == {"users"}


@pytest.mark.parametrize(
    "params",
    [
        {"user.0.name": 5, "user.0.login-time": 0},
        {"user.0.name": "x", "user.0.login-time": "soon"},
        {
            "fs.0.name": "vda",
            "fs.0.mountpoint": "/",
            "fs.0.fstype": "ext4",
            "fs.0.disk.0.serial": 1,
        },
        {"if.0.name": "eth0", "if.0.addr.0.addr": "10.0.0.1", "if.0.addr.0.prefix": "24"},
        {"disk.0.name": "/dev/vda", "disk.0.partition": "no"},
        {"user.0": "flat", "user.0.name": "x"},  # a member clashes with a value
        {"timezone": "UTC"},
        {"user.x.name": "y", "user.0.name": "z"},  # not a list of entries
    ],
)
def test_parameters_that_do_not_fit_are_protocol_errors(params) -> None:
    parts = ["users", "fs", "net", "disks", "timezone"]
    with pytest.raises(ProtocolError):
        unflatten_guest_info(params, parts)


def test_every_part_has_an_option_name_and_a_command() -> None:
    assert PART_NAMES == (
        "os",
        "hostname",
        "users",
        "timezone",
        "fs",
        "disks",
        "net",
        "load",
        "vcpus",
    )
    assert all(part.command.startswith("guest-") for part in PARTS)
