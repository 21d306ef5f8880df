"""The guest-state models (from_reply checks, sorting, to_json), the values users type (times,
CPU lists), the tables, and the "added in qemu-ga X" hint.

Replies are qemu-ga 7.2's own (recorded from the lab guest and the host-run agent) and
10.0.13's for what 7.2 lacks (guest-get-load, guest-network-get-route, recorded from the lab's
qemu-ga 10.0 guest), plus the optional members another agent may leave out (both releases'
qga/qapi-schema.json).
"""

from __future__ import annotations

import copy
import json

import pytest

from qgactl import tables, values
from qgactl.errors import AgentCommandError, InvalidUsage, ProtocolError
from qgactl.models import (
    CpuStats,
    DiskStats,
    GuestInfo,
    GuestTime,
    HostName,
    LoadAverage,
    Memory,
    NetworkInterface,
    Route,
    Timezone,
    User,
    Vcpu,
    noting_gaps,
    utc_text,
)
from qgactl.render import Terminal

# -- qemu-ga 7.2 ------------------------------------------------------------------------------

USERS_72 = [{"login-time": 1796113366, "user": "qgauser"}]
USERS_WINDOWS = [{"user": "Administrator", "domain": "WIN-1", "login-time": 1796113366.25}]
TIMEZONE_72 = {"zone": "IST", "offset": 19800}
INTERFACES_72 = [
    {
        "name": "lo",
        "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
            {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128},
        ],
        "statistics": {
            "tx-packets": 504, "tx-errs": 0, "rx-bytes": 127026, "rx-dropped": 0,
            "rx-packets": 504, "rx-errs": 0, "tx-bytes": 127026, "tx-dropped": 0,
        },
        "hardware-address": "00:00:00:00:00:00",
    },
    {"name": "ifb0", "hardware-address": "42:e6:31:bd:6f:e6"},  # no addresses, no statistics
]  # fmt: skip
VCPUS_72 = [  # unordered, as 7.2 sends them
    {"online": True, "can-offline": True, "logical-id": 1},
    {"online": True, "can-offline": False, "logical-id": 0},
]
MEMORY_BLOCKS_72 = [
    {"phys-index": 33, "online": True, "can-offline": True},
    {"phys-index": 0, "online": True, "can-offline": False},
    {"phys-index": 1, "online": True, "can-offline": True},
    {"phys-index": 2, "online": False, "can-offline": True},
    {"phys-index": 32, "online": True, "can-offline": True},
]
MEMORY_INFO_72 = {"size": 134217728}
DISKSTATS_72 = [
    {
        "name": "vda",
        "major": 254,
        "minor": 0,
        "stats": {
            "read-sectors": 3284, "read-ios": 95733, "read-merges": 0, "write-sectors": 7740,
            "write-ios": 112802, "write-merges": 3, "discard-sectors": 0, "discard-ios": 0,
            "discard-merges": 0, "flush-ios": 2, "read-ticks": 17, "write-ticks": 40,
            "discard-ticks": 0, "flush-ticks": 1, "ios-pgr": 0, "total-ticks": 19132,
            "weight-ticks": 58,
        },
    },
    {"name": "old", "major": 8, "minor": 0, "stats": {"read-ios": 1}},  # an older kernel's few
]  # fmt: skip
CPUSTATS_72 = [
    {
        "type": "linux", "cpu": 0, "user": 755540, "nice": 0, "system": 99950, "idle": 1524340,
        "iowait": 7140, "irq": 0, "softirq": 8940, "steal": 6770, "guest": 0, "guestnice": 0,
    },
    {"type": "linux", "cpu": 1, "user": 1, "nice": 0, "system": 2, "idle": 3},  # optional left out
]  # fmt: skip

# -- qemu-ga 10.0 (not in 7.2) ----------------------------------------------------------------

# recorded from the lab's qemu-ga 10.0.13 guest (lab_domain10)
LOAD_100 = {"load15m": 0.04833984375, "load5m": 0.1455078125, "load1m": 0.61669921875}
ROUTES_100 = [
    {
        "flags": 3,
        "metric": 0,
        "refcnt": 0,
        "window": 0,
        "version": 4,
        "iface": "eth0",
        "destination": "0.0.0.0",
        "irtt": 0,
        "gateway": "10.0.2.2",
        "use": 0,
        "mtu": 0,
        "mask": "0.0.0.0",
    },
    {
        "flags": 1,
        "metric": 0,
        "refcnt": 0,
        "window": 0,
        "version": 4,
        "iface": "eth0",
        "destination": "10.0.2.0",
        "irtt": 0,
        "gateway": "0.0.0.0",
        "use": 0,
        "mtu": 0,
        "mask": "255.255.255.0",
    },
    {
        "flags": 1,
        "source": "::",
        "metric": 256,
        "refcnt": 1,
        "version": 6,
        "nexthop": "::",
        "iface": "eth0",
        "destination": "fe80::",
        "desprefixlen": "64",
        "srcprefixlen": "0",
        "use": 0,
    },
    {
        "flags": 2097664,
        "source": "::",
        "metric": -1,
        "refcnt": 1,
        "version": 6,
        "nexthop": "::",
        "iface": "lo",
        "destination": "::",
        "desprefixlen": "0",
        "srcprefixlen": "0",
        "use": 0,
    },
    {
        "flags": 18446744071564165121,
        "source": "::",
        "metric": 0,
        "refcnt": 2,
        "version": 6,
        "nexthop": "::",
        "iface": "lo",
        "destination": "::1",
        "desprefixlen": "128",
        "srcprefixlen": "0",
        "use": 0,
    },
    {
        "flags": 18446744071564165121,
        "source": "::",
        "metric": 0,
        "refcnt": 2,
        "version": 6,
        "nexthop": "::",
        "iface": "eth0",
        "destination": "fe80::5054:ff:fe12:3456",
        "desprefixlen": "128",
        "srcprefixlen": "0",
        "use": 0,
    },
    {
        "flags": 1,
        "source": "::",
        "metric": 256,
        "refcnt": 2,
        "version": 6,
        "nexthop": "::",
        "iface": "eth0",
        "destination": "ff00::",
        "desprefixlen": "8",
        "srcprefixlen": "0",
        "use": 0,
    },
    {
        "flags": 2097664,
        "source": "::",
        "metric": -1,
        "refcnt": 1,
        "version": 6,
        "nexthop": "::",
        "iface": "lo",
        "destination": "::",
        "desprefixlen": "0",
        "srcprefixlen": "0",
        "use": 0,
    },
]


def test_users_whole_and_fractional_seconds() -> None:
    [user] = User.list_from_reply(USERS_72)
    assert (user.user, user.domain, user.login_time) == ("qgauser", None, 1796113366.0)
    [windows] = User.list_from_reply(USERS_WINDOWS)
    assert windows.domain == "WIN-1" and windows.login_time == 1796113366.25
    assert json.loads(json.dumps(windows.to_json()))["login_time"] == 1796113366.25


def test_timezone_half_hour_offset() -> None:
    zone = Timezone.from_reply(TIMEZONE_72)
    assert zone == Timezone("IST", 19800)
    assert tables.utc_offset(zone.offset) == "UTC+05:30"
    assert tables.utc_offset(-12600) == "UTC-03:30" and tables.utc_offset(0) == "UTC+00:00"
    assert Timezone.from_reply({"offset": 3600}).zone is None  # "*zone" is optional


def test_time_is_nanoseconds_and_drift() -> None:
    clock = GuestTime.from_reply(1796113366_123456789, host_nanoseconds=1796113365_123456789)
    assert clock.drift_seconds == pytest.approx(1.0)
    data = clock.to_json()
    assert data["utc"] == "2026-12-01T08:22:46.123456Z"
    assert data["nanoseconds"] == 1796113366_123456789 and data["drift_seconds"] == 1.0
    assert utc_text(0) == "1970-01-01T00:00:00.000000Z"


def test_interfaces_with_and_without_statistics() -> None:
    lo, ifb = NetworkInterface.list_from_reply(INTERFACES_72)
    assert [(a.address, a.type, a.prefix) for a in lo.addresses] == [
        ("127.0.0.1", "ipv4", 8),
        ("::1", "ipv6", 128),
    ]
    assert lo.statistics is not None and lo.statistics.rx_bytes == 127026
    assert ifb.addresses == () and ifb.statistics is None
    assert lo.to_json()["statistics"]["tx_packets"] == 504


def test_vcpus_and_memory_blocks_are_sorted() -> None:
    assert [v.logical_id for v in Vcpu.list_from_reply(VCPUS_72)] == [0, 1]
    memory = Memory.from_replies(MEMORY_BLOCKS_72, MEMORY_INFO_72)
    assert [b.phys_index for b in memory.blocks] == [0, 1, 2, 32, 33]
    assert memory.online_bytes == 4 * 134217728
    assert memory.to_json()["online_bytes"] == 4 * 134217728


def test_memory_table_joins_runs_of_blocks() -> None:
    text = _render(tables.memory_table(Memory.from_replies(MEMORY_BLOCKS_72, MEMORY_INFO_72)))
    assert " ".join(text.split()).startswith("5 memory blocks of 128.0 MiB, 4 online (512.0 MiB)")
    rows = [line.split() for line in text.splitlines() if "yes" in line or "no " in line]
    assert rows == [
        ["0", "128.0", "MiB", "yes", "no"],
        ["1", "128.0", "MiB", "yes", "yes"],
        ["2", "128.0", "MiB", "no", "yes"],
        ["32-33", "256.0", "MiB", "yes", "yes"],
    ]


def test_diskstats_all_counters_optional() -> None:
    vda, old = DiskStats.list_from_reply(DISKSTATS_72)
    assert (vda.name, vda.major, vda.minor) == ("vda", 254, 0)
    assert vda.stats.read_ios == 95733 and vda.stats.total_ticks == 19132
    assert old.stats.read_ios == 1 and old.stats.write_ios is None
    text = _render(tables.diskstats_table([vda]))
    assert "1.6 MiB" in text and "254:0" in text  # 3284 sectors of 512 bytes


def test_cpustats_linux_and_an_unknown_type() -> None:
    first, second = CpuStats.list_from_reply(CPUSTATS_72)
    assert (first.cpu, first.user, first.steal) == (0, 755540, 6770)
    assert second.iowait is None
    [other] = CpuStats.list_from_reply([{"type": "windows", "whatever": 1}])
    assert other.type == "windows" and other.cpu is None
    assert other.to_json() == {"type": "windows", "whatever": 1}  # unmodelled, kept as sent


def test_load_and_routes_of_qemu_ga_10() -> None:
    load = LoadAverage.from_reply(LOAD_100)
    assert load == LoadAverage(0.61669921875, 0.1455078125, 0.04833984375)
    assert LoadAverage.from_reply({"load1m": 1, "load5m": 0, "load15m": 0}).load1m == 1.0
    routes = Route.list_from_reply(ROUTES_100)
    default, subnet, v6 = routes[:3]
    assert (default.gateway, default.mask, default.version, default.nexthop) == (
        "10.0.2.2", "0.0.0.0", 4, None,
    )  # fmt: skip
    assert (subnet.destination, subnet.mask) == ("10.0.2.0", "255.255.255.0")
    assert (v6.desprefixlen, v6.nexthop, v6.gateway, v6.mtu) == ("64", "::", None, None)
    assert max(r.flags or 0 for r in routes) == 18446744071564165121  # uint64 in the schema
    text = _render(tables.routes_table(routes))
    assert "0.0.0.0/0.0.0.0" in text and "fe80::/64" in text and "10.0.2.2" in text


BAD_SHAPES = [
    (User.list_from_reply, {"user": "x"}),  # not a list
    (User.list_from_reply, [{"user": "x", "login-time": "yesterday"}]),
    (User.list_from_reply, [{"user": "x", "login-time": True}]),  # a bool is not a number
    (Timezone.from_reply, {"zone": "UTC", "offset": 1.5}),
    (Timezone.from_reply, {"zone": 5, "offset": 0}),
    (lambda r: GuestTime.from_reply(r, 0), "1796113366"),
    (HostName.from_reply, {"host-name": ["a"]}),
    (NetworkInterface.list_from_reply, [{"name": "eth0", "ip-addresses": {}}]),
    (NetworkInterface.list_from_reply, [{"name": "eth0", "statistics": {"rx-bytes": "1"}}]),
    (Vcpu.list_from_reply, [{"logical-id": "0", "online": True}]),
    (Vcpu.list_from_reply, [{"logical-id": 0, "online": 1}]),
    (lambda r: Memory.from_replies(r, MEMORY_INFO_72), [{"phys-index": 0, "online": "yes"}]),
    (lambda r: Memory.from_replies([], r), {"size": "128M"}),
    (LoadAverage.from_reply, {"load1m": 1, "load5m": [0.5], "load15m": 1}),
    (DiskStats.list_from_reply, [{"name": "vda", "major": 1, "minor": 0, "stats": []}]),
    (CpuStats.list_from_reply, [{"type": "linux", "cpu": 0, "user": 1.5}]),
    (Route.list_from_reply, [{"iface": "eth0", "destination": "::", "metric": 1, "version": "6"}]),
]


@pytest.mark.parametrize(("build", "reply"), BAD_SHAPES)
def test_wrong_shapes_are_protocol_errors(build, reply) -> None:
    with pytest.raises(ProtocolError) as caught:
        build(copy.deepcopy(reply))
    assert "unexpected reply from the agent" in caught.value.message


# Replies that lack members the schema calls mandatory (another agent, an older or patched
# build): shown with those empty, and named once per command.
LACKING = [
    (Timezone.from_reply, {"zone": "UTC"}, "guest-get-timezone: reply lacks offset"),
    (
        NetworkInterface.list_from_reply,
        [{"name": "eth0", "statistics": {"rx-bytes": 1}}],
        "guest-network-get-interfaces: reply lacks statistics.rx-packets, statistics.rx-errs, "
        "statistics.rx-dropped, statistics.tx-bytes, statistics.tx-packets, statistics.tx-errs, "
        "statistics.tx-dropped",
    ),
    (
        NetworkInterface.list_from_reply,
        [{"ip-addresses": [{"ip-address": "fe80::1"}]}, {"name": "lo"}],
        "guest-network-get-interfaces: reply lacks name, ip-addresses.ip-address-type, "
        "ip-addresses.prefix",
    ),
    (
        lambda r: Memory.from_replies(r, {}),
        [{"phys-index": 0, "online": True}],
        "guest-get-memory-block-info: reply lacks size",
    ),
    (
        LoadAverage.from_reply,
        {"load1m": 1, "load5m": None},
        "guest-get-load: reply lacks load5m, load15m",
    ),
    (
        CpuStats.list_from_reply,
        [{"type": "linux", "cpu": 0, "user": 1}, {"cpu": 1}],
        "guest-get-cpustats: reply lacks nice, system, idle, type",
    ),
    (
        Route.list_from_reply,
        [{"iface": "eth0", "destination": "::", "metric": 1}],
        "guest-network-get-route: reply lacks version",
    ),
    (
        Vcpu.list_from_reply,
        [{"online": True}, {"logical-id": 0}],
        "guest-get-vcpus: reply lacks logical-id, online",
    ),
    (User.list_from_reply, [{"user": "root"}], "guest-get-users: reply lacks login-time"),
    (HostName.from_reply, {}, "guest-get-host-name: reply lacks host-name"),
    (
        DiskStats.list_from_reply,
        [{"name": "vda"}],
        "guest-get-diskstats: reply lacks major, minor, stats",
    ),
]


@pytest.mark.parametrize(("build", "reply", "line"), LACKING)
def test_lacking_members_are_shown_empty_and_named(build, reply, line) -> None:
    model, lines = noting_gaps(build, copy.deepcopy(reply))
    assert lines == [line + " (shown empty)"]
    data = json.loads(json.dumps(_json(model)))  # null in the JSON
    assert None in _leaves(data)
    for width in (60, 200):  # and the tables draw
        assert _render(_table(model), width)


_TABLES = {
    Timezone: tables.timezone_table,
    NetworkInterface: tables.net_table,
    Memory: tables.memory_table,
    LoadAverage: tables.load_table,
    CpuStats: tables.cpustats_table,
    Route: tables.routes_table,
    Vcpu: tables.vcpus_table,
    User: tables.users_table,
    HostName: tables.hostname_table,
    DiskStats: tables.diskstats_table,
}


def _is_list(model):
    return isinstance(model, tuple) and not hasattr(model, "_fields")


def _table(model):
    return _TABLES[type(model[0] if _is_list(model) else model)](model)


def _json(model):
    return [m.to_json() for m in model] if _is_list(model) else model.to_json()


def _leaves(data):
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in _leaves(value)]
    if isinstance(data, list):
        return [leaf for value in data for leaf in _leaves(value)]
    return [data]


def test_guestinfo_json_leaves_out_missing_parts() -> None:
    info = GuestInfo(timezone=Timezone("IST", 19800), vcpus=Vcpu.list_from_reply(VCPUS_72))
    assert info.to_json() == {
        "timezone": {"zone": "IST", "offset": 19800},
        "vcpus": [
            {"logical_id": 0, "online": True, "can_offline": False},
            {"logical_id": 1, "online": True, "can_offline": True},
        ],
    }
    text = _render(tables.guestinfo_table(info))
    assert "Time zone" in text and "vCPUs" in text and "Users" not in text


def test_tables_escape_guest_strings() -> None:
    nasty = "\x1b]0;pwned\x07[bold]x[/]"
    text = _render(tables.users_table([User(nasty, None, 0.0)]))
    assert "\x1b" not in text and "\x07" not in text and "[bold]x[/]" in text
    interface = NetworkInterface(nasty, nasty, (), None)
    assert "\x1b" not in _render(tables.net_table([interface]))


# -- values a user types --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("1796113366", 1796113366_000000000),
        ("1796113366.5", 1796113366_500000000),
        ("1796113366.000000001", 1796113366_000000001),
        ("2026-12-01T08:22:46Z", 1796113366_000000000),
        ("2026-12-01T08:22:46.25z", 1796113366_250000000),
        ("2026-12-01 13:52:46+05:30", 1796113366_000000000),
        ("2026-12-01T03:22:46-05:00", 1796113366_000000000),
        ("1970-01-01T00:00:00+00:00", 0),
    ],
)
def test_parse_time(text: str, nanoseconds: int) -> None:
    assert values.parse_time(text) == nanoseconds


@pytest.mark.parametrize(
    "text", ["2026-12-01T08:22:46", "yesterday", "", "1e9", "-5", "1969-12-31T23:59:59Z"]
)
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(InvalidUsage) as caught:
        values.parse_time(text)
    assert caught.value.hint


def test_parse_cpu_list() -> None:
    assert values.parse_cpu_list("1") == (1,)
    assert values.parse_cpu_list("1-3") == (1, 2, 3)
    assert values.parse_cpu_list("0,2, 5-6,2") == (0, 2, 5, 6)


@pytest.mark.parametrize("text", ["", "a", "3-1", "1,,2", "-1", "0-99999999", "1-"])
def test_parse_cpu_list_refuses(text: str) -> None:
    with pytest.raises(InvalidUsage):
        values.parse_cpu_list(text)


# -- feature detection: which release added a command ----------------------------------------


def test_unknown_command_hint_names_the_release() -> None:
    load = AgentCommandError(
        "guest-get-load", "CommandNotFound", "The command guest-get-load has not been found"
    )
    assert "added in qemu-ga 10.0" in (load.hint or "")
    route = AgentCommandError(
        "guest-network-get-route", "CommandNotFound", "The command X has not been found"
    )
    assert "added in qemu-ga 9.1" in (route.hint or "")
    unknown = AgentCommandError("guest-x", "CommandNotFound", "The command x has not been found")
    assert "added in" not in (unknown.hint or "") and "qgactl info" in (unknown.hint or "")


def _render(table: object, width: int | None = None) -> str:
    import io

    out = io.StringIO()
    console = Terminal("table", stdout=out)._console(out)
    if width is not None:
        console.width = width
    console.print(table)
    return out.getvalue()


# -- the clock's drift in words --------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-0.755, "behind the host by 755 ms"),
        (0.0004, "in step with the host (within 1 ms)"),
        (0.0251, "ahead of the host by 25 ms"),
        (12.34, "ahead of the host by 12.3 s"),
        (-245, "behind the host by 4 min 5 s"),
        (3600 * 3 + 20 * 60 + 7, "ahead of the host by 3 h 20 min"),
        (-86400 - 30, "behind the host by 1 day"),
        (-103501855.304, "behind the host by 1197 days 22 h"),
    ],
)
def test_drift_is_ahead_or_behind_in_a_readable_unit(seconds: float, text: str) -> None:
    assert tables.drift_text(seconds) == text
