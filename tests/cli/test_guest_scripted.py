"""The guest-state commands against scripted agents (tests/fakeagent.py), for what a real agent
can't show on demand: an older or locked-down agent (feature detection, exit 6 with the
release that added the command), guestinfo leaving out what the agent lacks, a partial
guest-set-vcpus, the exact arguments --sync and --set send, and hostile replies.

Each runs qgactl as a real process against the fake's socket.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import pytest
from fakeagent import NASTY, NASTY_CHARS, FakeAgent, Peer, sentinel

WIDE = {"COLUMNS": "300"}  # rich wraps cells at the pipe's default 80 columns
Reply = Any  # a "return" value, an {"error": ...} object, or a function of the request


def scripted(replies: dict[str, Reply], seen: list[dict[str, Any]]) -> Callable[[Peer], None]:
    """Syncs, then answers each command from ``replies`` (a command not there: qemu-ga's
    "has not been found"), recording every request in ``seen``."""

    def scenario(peer: Peer) -> None:
        if not peer.sync():
            return
        while (request := peer.read_request()) is not None:
            command = request["execute"]
            if command == "guest-sync-delimited":
                peer.send(sentinel(request["arguments"]["id"]))
                continue
            seen.append(request)
            reply = replies.get(command, not_found(command))
            if callable(reply):
                reply = reply(request)
            message = reply if isinstance(reply, dict) and "error" in reply else {"return": reply}
            peer.send(json.dumps(message).encode() + b"\n")

    return scenario


def not_found(command: str) -> dict[str, Any]:
    desc = f"The command {command} has not been found"
    return {"error": {"class": "CommandNotFound", "desc": desc}}


def disabled(command: str) -> dict[str, Any]:
    desc = f"Command {command} has been disabled"
    return {"error": {"class": "CommandNotFound", "desc": desc}}


def guest_info(enabled: list[str], blocked: tuple[str, ...] = ()) -> dict[str, Any]:
    commands = [{"name": c, "enabled": True, "success-response": True} for c in enabled]
    commands += [{"name": c, "enabled": False, "success-response": True} for c in blocked]
    return {"version": "7.2.22", "supported_commands": commands}


def run(qgactl, replies: dict[str, Reply], *args: str) -> tuple[Any, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    with FakeAgent(scripted(replies, seen)) as agent:
        result = qgactl("--socket", agent.path, "-t", "2", *args, env=WIDE)
    return result, seen


def one_line(result: Any, code: int) -> str:
    assert result.code == code, (result.code, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    return line


# -- feature detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command", "release"),
    [
        (["load"], "guest-get-load", "10.0"),
        (["net", "--routes"], "guest-network-get-route", "9.1"),
        (["diskstats"], "guest-get-diskstats", "7.1"),
        (["cpustats"], "guest-get-cpustats", "7.1"),
        (["users"], "guest-get-users", "2.10"),
    ],
)
def test_a_command_the_agent_lacks_names_it_and_its_release(qgactl, args, command, release):
    replies = {"guest-network-get-interfaces": []}  # for net --routes: interfaces work
    result, _ = run(qgactl, replies, *args)
    line = one_line(result, 6)
    assert f"{command}: CommandNotFound" in line
    assert f"added in qemu-ga {release}" in line


def test_a_blocked_command_says_how_to_allow_it(qgactl):
    result, _ = run(qgactl, {"guest-get-host-name": disabled("guest-get-host-name")}, "hostname")
    line = one_line(result, 6)
    assert "guest-get-host-name" in line and "block-rpcs" in line and "added in" not in line


def test_guestinfo_leaves_out_what_the_agent_lacks_or_blocks(qgactl):
    replies = {
        "guest-info": guest_info(
            ["guest-get-host-name", "guest-get-vcpus"], blocked=("guest-get-users",)
        ),
        "guest-get-host-name": {"host-name": "vm1"},
        "guest-get-vcpus": [{"logical-id": 0, "online": True}],
    }
    result, seen = run(qgactl, replies, "-o", "json", "guestinfo")
    assert result.code == 0, result.stderr
    assert result.json() == {
        "hostname": {"host_name": "vm1"},
        "vcpus": [{"logical_id": 0, "online": True, "can_offline": None}],
    }
    # guest-info first, then only what it lists as enabled: no call that could fail
    assert [r["execute"] for r in seen] == ["guest-info", "guest-get-host-name", "guest-get-vcpus"]


def test_guestinfo_parts_choose_the_calls(qgactl):
    replies = {
        "guest-info": guest_info(["guest-get-timezone", "guest-get-load", "guest-get-users"]),
        "guest-get-timezone": {"zone": "IST", "offset": 19800},
        "guest-get-load": {"load1m": 0.5, "load5m": 0.25, "load15m": 0.125},
    }
    result, seen = run(qgactl, replies, "-o", "json", "guestinfo", "--timezone", "--load")
    assert result.code == 0, result.stderr
    assert result.json() == {
        "timezone": {"zone": "IST", "offset": 19800},
        "load": {"load1m": 0.5, "load5m": 0.25, "load15m": 0.125},
    }
    assert [r["execute"] for r in seen] == ["guest-info", "guest-get-timezone", "guest-get-load"]


# -- what the changing commands send ------------------------------------------------------------


def test_time_sync_sends_the_hosts_time_now(qgactl):
    """Not an empty guest-set-time: that would read the guest's own RTC (PROTOCOL.md)."""
    replies = {"guest-set-time": {}, "guest-get-time": lambda _request: time.time_ns()}
    before = time.time_ns()
    result, seen = run(qgactl, replies, "-o", "json", "time", "--sync")
    after = time.time_ns()
    assert result.code == 0, result.stderr
    set_time, get_time = seen
    assert set_time["execute"] == "guest-set-time" and get_time["execute"] == "guest-get-time"
    assert before <= set_time["arguments"]["time"] <= after
    assert abs(result.json()["drift_seconds"]) < 1


def test_time_sync_without_hwclock_says_what_to_install(qgactl):
    """Debian 12's qemu-ga 7.2 on a guest without hwclock (util-linux-extra), word for word."""
    unsupported = {
        "class": "GenericError",
        "desc": "this feature or command is not currently supported",
    }
    replies = {"guest-set-time": {"error": unsupported}, "guest-get-time": 0}
    result, seen = run(qgactl, replies, "time", "--sync")
    line = one_line(result, 6)
    assert "not currently supported" in line and "no hwclock" in line
    assert "util-linux-extra" in line and "systemctl restart qemu-guest-agent" in line
    assert [r["execute"] for r in seen] == ["guest-set-time"]  # the clock is not read back


def test_time_set_sends_the_time_given(qgactl):
    replies = {"guest-set-time": {}, "guest-get-time": 1796113366_000000000}
    result, seen = run(qgactl, replies, "time", "--set", "2026-12-01 13:52:46+05:30")
    assert result.code == 0, result.stderr
    assert seen[0]["arguments"] == {"time": 1796113366_000000000}


@pytest.mark.parametrize(
    "args",
    [
        ["time", "--set", "2026-12-01T10:00:00"],  # no zone
        ["time", "--set", "now", "--sync"],
        ["vcpus", "--enable", "1-x"],
        ["vcpus", "--enable", "1", "--disable", "2"],
    ],
)
def test_bad_values_are_refused_before_any_call(qgactl, args):
    result, seen = run(qgactl, {}, *args)
    line = one_line(result, 2)
    assert "hint:" in line and seen == []


def test_vcpus_partial_change_asks_again_for_the_reason(qgactl):
    """guest-set-vcpus returns how many it processed; asked again with the rest it says why."""
    answers = iter([1, {"error": {"class": "GenericError", "desc": "cpu 3 is gone"}}])
    replies = {"guest-set-vcpus": lambda _request: next(answers)}
    result, seen = run(qgactl, replies, "vcpus", "--disable", "1-3")
    line = one_line(result, 6)
    assert "cpu 3 is gone" in line and "changed 1 of the 3" in line
    assert [len(r["arguments"]["vcpus"]) for r in seen] == [3, 2]
    assert seen[0]["arguments"]["vcpus"][0] == {"logical-id": 1, "online": False}


def test_vcpus_enable_reports_and_reads_back(qgactl):
    replies = {
        "guest-set-vcpus": lambda request: len(request["arguments"]["vcpus"]),
        "guest-get-vcpus": [{"logical-id": 1, "online": True}, {"logical-id": 0, "online": True}],
    }
    result, seen = run(qgactl, replies, "-o", "json", "vcpus", "--enable", "1")
    assert result.code == 0, result.stderr
    assert "brought online 1 vCPU" in result.stderr
    assert [v["logical_id"] for v in result.json()] == [0, 1]
    assert [r["execute"] for r in seen] == ["guest-set-vcpus", "guest-get-vcpus"]


# -- hostile replies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command", "reply"),
    [
        (["users"], "guest-get-users", [{"user": 1, "login-time": 0}]),
        (["timezone"], "guest-get-timezone", {"zone": "UTC", "offset": "0"}),
        (["time"], "guest-get-time", 1.5),
        (["net"], "guest-network-get-interfaces", [{"name": "eth0", "ip-addresses": [1]}]),
        (["vcpus"], "guest-get-vcpus", {"logical-id": 0}),
        (["load"], "guest-get-load", {"load1m": "high", "load5m": 0, "load15m": 0}),
        (["cpustats"], "guest-get-cpustats", [{"type": "linux", "cpu": "0"}]),
    ],
)
def test_replies_that_do_not_fit_the_schema_are_protocol_errors(qgactl, args, command, reply):
    result, _ = run(qgactl, {command: reply}, *args)
    assert "unexpected reply from the agent" in one_line(result, 7)


def test_guest_strings_in_tables_are_escaped(qgactl):
    nasty = "".join(NASTY.values())
    replies = {
        "guest-get-users": [{"user": nasty, "login-time": 1796113366, "domain": nasty}],
        "guest-get-host-name": {"host-name": nasty},
        "guest-network-get-interfaces": [{"name": nasty, "hardware-address": nasty}],
        "guest-get-timezone": {"zone": nasty, "offset": 0},
    }
    for command in ("users", "hostname", "net", "timezone"):
        result, _ = run(qgactl, replies, "-o", "table", command)
        assert result.code == 0, result.stderr
        assert not any(char in result.stdout for char in NASTY_CHARS), command
        assert NASTY["markup"] in result.stdout and "\\x1b" in result.stdout, command


def test_raw_is_the_agents_reply_only_when_the_command_made_one_call(qgactl):
    replies = {"guest-set-time": {}, "guest-get-time": 1796113366_000000000}
    result, _ = run(qgactl, replies, "-o", "raw", "time")
    assert result.code == 0 and json.loads(result.stdout) == {"return": 1796113366_000000000}
    # a set, then the read back: two replies, so the JSON qgactl builds from them
    result, seen = run(qgactl, replies, "-o", "raw", "time", "--sync")
    assert result.code == 0 and len(seen) == 2, result.stderr
    assert "drift_seconds" in json.loads(result.stdout)
