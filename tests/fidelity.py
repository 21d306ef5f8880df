"""Real-world agent replies with long values, and the check that ``-o json`` holds everything
the agent sent (shared by the CLI, host-agent and guest tests).

The replies are shaped as the agents send them (QEMU qga/qapi-schema.json; qemu-ga on Windows
Server 2022, a Linux guest with NVMe disks, a Proxmox VE node's bridges, taps and firewall
links): Windows volume GUID paths, IPv6 global and link-local addresses, MACs, NVMe serials
and PCI addresses are the values an 80-column table used to cut.
"""

from __future__ import annotations

from typing import Any

# Agent members that -o json names otherwise (README, "Output"); every other member keeps the
# agent's name, with underscores for dashes when qgactl models it, as sent when it doesn't.
JSON_RENAMED = {
    "supported_commands": "commands",
    "disk": "disks",
    "ip-addresses": "addresses",
    "ip-address": "address",
    "ip-address-type": "type",
    "size": "block_size",
}


def assert_superset(raw: Any, data: Any, *, values: bool = True, path: str = "$") -> None:
    """Every member of the agent's reply ``raw`` is in ``data`` (-o json), recursively, with
    the same value (``values=False``: the same members only, for counters that move between
    two calls). Lists may be in another order (qgactl sorts vCPUs and commands)."""
    if isinstance(raw, dict):
        assert isinstance(data, dict), f"{path}: an object in the reply, {data!r} in the JSON"
        for key, value in raw.items():
            names = [JSON_RENAMED.get(key), key.replace("-", "_"), key]
            found = [name for name in names if name is not None and name in data]
            assert found, f"{path}.{key} is missing from the JSON: {sorted(data)}"
            assert_superset(value, data[found[0]], values=values, path=f"{path}.{key}")
    elif isinstance(raw, list):
        assert isinstance(data, list) and len(data) == len(raw), f"{path}: {data!r}"
        for index, item in enumerate(raw):
            assert any(_covers(item, candidate, values) for candidate in data), (
                f"{path}[{index}] = {item!r} has no counterpart in the JSON"
            )
    elif values:
        assert raw == data, f"{path}: {raw!r} in the reply, {data!r} in the JSON"


def _covers(raw: Any, data: Any, values: bool) -> bool:
    try:
        assert_superset(raw, data, values=values)
    except AssertionError:
        return False
    return True


# -- Windows Server 2022 (qemu-ga for Windows, virtio-win) -----------------------------------

WINDOWS_VOLUMES = [
    "\\\\?\\Volume{4c1b1b4a-5f2e-4a3b-9d8c-7e6f5a4b3c2d}\\",
    "\\\\?\\Volume{4c1b1b4a-5f2e-4a3b-9d8c-7e6f5a4b3c2e}\\",  # differs in its last digit only
    "\\\\?\\Volume{a8f0c3d1-0000-0000-0000-100000000000}\\",
]
WINDOWS_FSINFO = [
    {
        "name": WINDOWS_VOLUMES[0],
        "total-bytes": 135839850496,
        "mountpoint": "C:\\",
        "disk": [
            {
                "serial": "QM00005",
                "bus-type": "sata",
                "bus": 0,
                "unit": 0,
                "pci-controller": {"bus": 0, "slot": 31, "domain": 0, "function": 2},
                "dev": "\\\\.\\PhysicalDrive0",
                "target": 0,
            }
        ],
        "used-bytes": 24467468288,
        "type": "NTFS",
    },
    {
        "name": WINDOWS_VOLUMES[1],
        "total-bytes": 536866549760,
        "mountpoint": "D:\\",
        "disk": [
            {
                "serial": "drive-scsi0-0-0-1-a1b2c3d4e5f6",
                "bus-type": "scsi",
                "bus": 0,
                "unit": 1,
                "pci-controller": {"bus": 5, "slot": 1, "domain": 0, "function": 0},
                "target": 0,  # no dev: an older agent's (the table shows the volume then)
            }
        ],
        "used-bytes": 1187840,
        "type": "NTFS",
    },
    {  # the recovery partition: no drive letter
        "name": WINDOWS_VOLUMES[2],
        "total-bytes": 649064448,
        "mountpoint": "",
        "disk": [],
        "used-bytes": 557056000,
        "type": "NTFS",
    },
]
WINDOWS_OSINFO = {
    "name": "Microsoft Windows",
    "kernel-release": "20348",
    "version": "Microsoft Windows Server 2022",
    "variant": "server",
    "pretty-name": "Windows Server 2022 Datacenter",
    "version-id": "2022",
    "variant-id": "server",
    "kernel-version": "10.0",
    "machine": "x86_64",
    "id": "mswindows",
}
WINDOWS_USERS = [
    {"user": "Administrator", "domain": "CORP-WIN2022-DC01", "login-time": 1796113366.25}
]

# -- a Linux guest with NVMe disks (qemu-ga 7.2+, smart data since 7.1) ---------------------

NVME_SERIALS = [
    "Samsung_SSD_980_PRO_2TB_S69ENF0R846614T",
    "INTEL_SSDPE2KX040T8_PHLJ9475012K4P0DGN",
]
NVME_PCI = ["0000:01:00.0", "0000:41:00.0"]


def _nvme_address(serial: str, bus: int, dev: str) -> dict[str, Any]:
    return {
        "serial": serial,
        "bus-type": "nvme",
        "bus": 0,
        "unit": 0,
        "pci-controller": {"bus": bus, "slot": 0, "domain": 0, "function": 0},
        "dev": dev,
        "target": 0,
    }


NVME_SMART = {
    "type": "nvme", "critical-warning": 0, "temperature": 310, "available-spare": 100,
    "available-spare-threshold": 10, "percentage-used": 3, "data-units-read-lo": 48190423,
    "data-units-read-hi": 0, "data-units-written-lo": 61553127, "data-units-written-hi": 0,
    "host-read-commands-lo": 690321998, "host-read-commands-hi": 0,
    "host-write-commands-lo": 1210466371, "host-write-commands-hi": 0,
    "controller-busy-time-lo": 2764, "controller-busy-time-hi": 0, "power-cycles-lo": 141,
    "power-cycles-hi": 0, "power-on-hours-lo": 11297, "power-on-hours-hi": 0,
    "unsafe-shutdowns-lo": 38, "unsafe-shutdowns-hi": 0, "media-errors-lo": 0,
    "media-errors-hi": 0, "number-of-error-log-entries-lo": 0,
    "number-of-error-log-entries-hi": 0,
}  # fmt: skip
NVME_DISKS = [
    {
        "name": "/dev/nvme0n1",
        "partition": False,
        "dependencies": [],
        "address": _nvme_address(NVME_SERIALS[0], 1, "/dev/nvme0n1"),
        "smart": NVME_SMART,
    },
    {"name": "/dev/nvme0n1p1", "partition": True, "dependencies": ["/dev/nvme0n1"]},
    {
        "name": "/dev/nvme1n1",
        "partition": False,
        "dependencies": [],
        "address": _nvme_address(NVME_SERIALS[1], 0x41, "/dev/nvme1n1"),
        "smart": {**NVME_SMART, "temperature": 305},
    },
    {
        "name": "/dev/dm-0",
        "partition": False,
        "dependencies": ["/dev/nvme0n1p1", "/dev/nvme1n1"],
        "alias": "luks-3f2a6a1e-8c4b-4e6f-9a1d-2b3c4d5e6f70",
    },
]
NVME_FSINFO = [
    {
        "name": "dm-0",
        "mountpoint": "/srv/postgresql/16/main",
        "type": "xfs",
        "used-bytes": 1391569584128,
        "total-bytes": 3998614835200,
        "total-bytes-privileged": 3998614835200,
        "disk": [
            _nvme_address(NVME_SERIALS[0], 1, "/dev/nvme0n1p1"),
            _nvme_address(NVME_SERIALS[1], 0x41, "/dev/nvme1n1"),
        ],
    }
]

# -- a Proxmox VE node: bridges, VLANs, taps and firewall links, IPv6 everywhere -------------


def _interface(name: str, mac: str, *addresses: tuple[str, str, int]) -> dict[str, Any]:
    return {
        "name": name,
        "hardware-address": mac,
        "ip-addresses": [
            {"ip-address-type": kind, "ip-address": address, "prefix": prefix}
            for kind, address, prefix in addresses
        ],
        "statistics": {
            "tx-packets": 1893372,
            "tx-errs": 0,
            "rx-bytes": 5120987341,
            "rx-dropped": 1207,
            "rx-packets": 4233918,
            "rx-errs": 0,
            "tx-bytes": 412876233,
            "tx-dropped": 0,
        },
    }


PROXMOX_ADDRESSES = [
    "fd8c:4687:e88d:1be3:3eec:efff:fe8a:9b2c/64",
    "fd8c:4687:e88d:1be3:3eec:efff:fe8a:9b2d/64",  # differs in its last digit only
    "2a01:4f8:10a:3d8b:3eec:efff:fe8a:9b2c/64",
    "fe80::3eec:efff:fe8a:9b2c/64",
    "192.168.178.201/24",
]
PROXMOX_MACS = ["3c:ec:ef:8a:9b:2c", "3c:ec:ef:8a:9b:2d", "bc:24:11:5e:a7:f3", "ce:5a:93:0b:1f:62"]
PROXMOX_INTERFACES = [
    _interface("lo", "00:00:00:00:00:00", ("ipv4", "127.0.0.1", 8), ("ipv6", "::1", 128)),
    _interface("enp65s0f0np0", PROXMOX_MACS[0]),
    _interface("enp65s0f1np1", PROXMOX_MACS[1]),
    _interface("bond0", PROXMOX_MACS[0]),
    _interface(
        "vmbr0",
        PROXMOX_MACS[0],
        ("ipv4", "192.168.178.201", 24),
        ("ipv6", "fd8c:4687:e88d:1be3:3eec:efff:fe8a:9b2c", 64),
        ("ipv6", "2a01:4f8:10a:3d8b:3eec:efff:fe8a:9b2c", 64),
        ("ipv6", "fe80::3eec:efff:fe8a:9b2c", 64),
    ),
    _interface(
        "vmbr0.20", PROXMOX_MACS[1], ("ipv6", "fd8c:4687:e88d:1be3:3eec:efff:fe8a:9b2d", 64)
    ),
    _interface("tap100i0", PROXMOX_MACS[2]),
    _interface("fwbr100i0", PROXMOX_MACS[3]),
    _interface("fwpr100p0", "9e:1c:0a:43:77:d5"),
    _interface("fwln100i0", "62:8b:3f:d2:0c:91"),
    _interface("veth101i0", "fe:4d:7a:19:c6:08"),
    _interface("wg-mesh-frankfurt0", "00:00:00:00:00:00", ("ipv6", "fdce:a7e4:19c2::1", 48)),
]

# -- members a newer qemu-ga might add, which this qgactl doesn't model ---------------------

FUTURE = {"x-future-member": {"nested": [1, "two"]}, "x-future-flag": True}


def with_future(reply: Any) -> Any:
    """``reply`` with FUTURE's members added to it and to every object in it."""
    if isinstance(reply, dict):
        return {**{key: with_future(value) for key, value in reply.items()}, **FUTURE}
    if isinstance(reply, list):
        return [with_future(item) for item in reply]
    return reply
