"""qgactl wait and qgactl job against scripted agents, for what a real guest can't do on demand:
a socket that appears late, an agent that refuses connections for a while, addresses that
come late or never, a hostile job listing. The real-guest tests are tests/vm/test_wait.py and
tests/vm/test_jobs.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from typing import Any, Callable

from fakeagent import FakeAgent, Peer, serving

LOOPBACK = [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]
LINK_LOCAL = [
    {"ip-address": "fe80::5054:ff:fe12:3456", "ip-address-type": "ipv6", "prefix": 64},
    {"ip-address": "169.254.3.4", "ip-address-type": "ipv4", "prefix": 16},
]
GLOBAL_V4 = [{"ip-address": "192.0.2.7", "ip-address-type": "ipv4", "prefix": 24}]


def _ok(value: Any) -> bytes:
    return json.dumps({"return": value}).encode() + b"\n"


def interfaces(*addresses: list[dict[str, Any]]) -> bytes:
    return _ok(
        [
            {"name": "lo", "ip-addresses": LOOPBACK},
            {"name": "eth0", "ip-addresses": [a for group in addresses for a in group]},
        ]
    )


def agent(late_interfaces: Callable[[int], bytes]) -> Callable[[Peer], None]:
    """An agent that answers ping, and guest-network-get-interfaces by how often it was asked."""
    asked = [0]

    def answer(command: str) -> bytes:
        if command == "guest-network-get-interfaces":
            asked[0] += 1
            return late_interfaces(asked[0])
        return _ok({})

    return serving(answer)


def test_wait_for_ip_prints_the_first_usable_address(qgactl):
    late = agent(lambda n: interfaces(LINK_LOCAL) if n < 3 else interfaces(LINK_LOCAL, GLOBAL_V4))
    with FakeAgent(late) as fake:
        run = qgactl("--socket", fake.path, "wait", "--for", "ip", "--timeout", "30")
    assert run.code == 0, run.stderr
    (row,) = run.json()
    assert (row["target"], row["ok"], row["addresses"]) == (fake.path, True, ["192.0.2.7"])


def test_loopback_and_link_local_never_count_and_the_timeout_is_5(qgactl):
    with FakeAgent(agent(lambda n: interfaces(LINK_LOCAL))) as fake:
        run = qgactl("--socket", fake.path, "wait", "--for", "ip", "--timeout", "1")
    assert (run.code, run.stdout) == (5, "")
    assert "no IP address yet" in run.stderr


def test_wait_for_ipv6_ignores_ipv4(qgactl):
    with FakeAgent(agent(lambda n: interfaces(LINK_LOCAL, GLOBAL_V4))) as fake:
        run = qgactl("--socket", fake.path, "wait", "--for", "ipv6", "--timeout", "1")
        assert run.code == 5
        run = qgactl("--socket", fake.path, "wait", "--for", "ipv4", "--timeout", "10")
    assert run.code == 0 and run.json()[0]["addresses"] == ["192.0.2.7"]


def test_wait_for_a_socket_that_appears_later(qgactl):
    fake = FakeAgent(serving(lambda command: _ok({})))  # its socket is made on __enter__
    waiter = subprocess.Popen(
        [sys.executable, "-m", "qgactl", "--socket", fake.path, "wait", "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1)  # qgactl is polling for the socket (set-up, not an assertion)
        assert waiter.poll() is None
        with fake:
            out, err = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    assert json.loads(out)[0]["ok"] is True


def test_an_agent_that_hangs_up_at_first_is_retried(qgactl):
    connections = [0]
    answering = serving(lambda command: _ok({}))

    def flaky(peer: Peer) -> None:
        connections[0] += 1
        if connections[0] > 2:
            answering(peer)  # the first two clients are hung up on at once

    with FakeAgent(flaky) as fake:
        run = qgactl("--socket", fake.path, "wait", "--timeout", "30")
    assert run.code == 0, run.stderr
    assert connections[0] == 3


def test_several_sockets_wait_together_with_one_row_each(qgactl):
    with FakeAgent(agent(lambda n: interfaces(GLOBAL_V4))) as one:
        run = qgactl(
            "--socket", one.path, "--socket", "/nonexistent/qga.sock", "wait", "--for", "ip",
            "--timeout", "1",
        )  # fmt: skip
    rows = {row["target"]: row for row in run.json()}
    assert run.code == 5
    assert rows[one.path]["addresses"] == ["192.0.2.7"]
    assert (rows["/nonexistent/qga.sock"]["ok"], rows["/nonexistent/qga.sock"]["exit_code"]) == (
        False,
        5,
    )


# -- jobs -----------------------------------------------------------------------------------


def capture_agent(stdout: bytes, status: int = 0) -> Callable[[Peer], None]:
    """An agent whose every guest-exec'd process exits at once with ``stdout``."""

    def answer(command: str) -> bytes:
        if command == "guest-exec":
            return _ok({"pid": 42})
        if command == "guest-exec-status":
            data = base64.b64encode(stdout).decode()
            return _ok({"exited": True, "exitcode": status, "out-data": data})
        return _ok({})

    return serving(answer)


def test_a_hostile_job_listing_shows_only_well_formed_jobs(qgactl):
    listing = (
        b"abc123\t1796000000\t0\t0\t[\"true\"]\n"
        b"../../etc\t1\t0\t0\t[\"x\"]\n"  # not an id: dropped
        b"def456\tnot-a-time\t-\t1\t\x1b]0;title\x07\n"  # not JSON: shown as text
        b"truncated-line-without-fields\n"
    )
    with FakeAgent(capture_agent(listing)) as fake:
        run = qgactl("--socket", fake.path, "job", "list")
    assert run.code == 0, run.stderr
    jobs = run.json()
    assert [job["id"] for job in jobs] == ["def456", "abc123"]
    assert jobs[0]["state"] == "running" and jobs[0]["started"] is None
    assert jobs[1] == {
        "id": "abc123", "command": ["true"], "started": "2026-11-30T00:53:20Z",
        "state": "exited", "status": 0,
    }  # fmt: skip
    assert "\x1b" not in run.stdout  # escaped in JSON


def test_job_ids_are_checked_before_the_guest_is_asked(qgactl):
    for words in (["logs", "../x"], ["wait", "a/b"], ["kill", ".."], ["rm", "x y"]):
        run = qgactl("--socket", "/nonexistent/qga.sock", "job", *words)
        assert run.code == 2 and "not a job id" in run.stderr, words


def test_detach_refuses_options_it_cannot_honour(qgactl):
    run = qgactl("--socket", "/nonexistent/qga.sock", "exec", "--detach", "-i", "--", "true")
    assert run.code == 125 and "--detach does not go with -i" in run.stderr
    run = qgactl("exec", "--detach", "web-*", "--", "true")
    assert run.code == 125 and "one guest" in run.stderr
