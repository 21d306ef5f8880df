"""qgactl wait on real guests: across a real `virsh start`, a domain without an agent channel,
an agent that never starts, and both transports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lab import lab
from tests.vm.guestside import Target, make_target

BOTH = pytest.mark.parametrize("target", ["libvirt", "socket"], indirect=True)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    return make_target(request.param, request)


def qgactl(*args: str, timeout: float = 60) -> tuple[int, bytes, bytes]:
    process = subprocess.run(
        [sys.executable, "-m", "qgactl", *args], capture_output=True, timeout=timeout
    )
    return process.returncode, process.stdout, process.stderr


@pytest.fixture
def shut_off_domain(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    """A lab domain of this test's own, defined and shut off (this test starts it)."""
    domain = lab.start_domain(lab.test_domain_name("waitstart"), start=False)
    try:
        yield domain
    finally:
        domain.destroy()


def test_wait_for_ip_across_a_real_virsh_start(shut_off_domain: lab.LabDomain) -> None:
    assert lab.domain_state(shut_off_domain) == "shut off"
    argv = ["-c", shut_off_domain.uri, "wait", shut_off_domain, "--for", "ip", "--timeout", "90"]
    waiter = subprocess.Popen(
        [sys.executable, "-m", "qgactl", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(2)  # it waits for a domain that is off, rather than failing
        subprocess.run(
            ["virsh", "-c", shut_off_domain.uri, "start", shut_off_domain],
            check=True,
            capture_output=True,
        )
        out, err = waiter.communicate(timeout=150)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    (row,) = json.loads(out)
    assert (row["target"], row["ok"], row["addresses"]) == (shut_off_domain, True, ["10.0.2.15"])
    assert shut_off_domain.agent_ping()  # the agent really answers now (virsh's own ping)


def test_a_domain_without_agent_channel_fails_at_once(
    domain_no_channel: lab.LabDomain,
) -> None:
    # The process timeout is far below --timeout: a wait would fail the test there.
    code, out, err = qgactl(
        "-c", domain_no_channel.uri, "wait", domain_no_channel, "--timeout", "600", timeout=60
    )
    assert (code, out) == (4, b"")
    assert f"qgactl add-channel {domain_no_channel}".encode() in err


def test_an_agent_that_never_starts_times_out_with_5(
    domain_agent_not_started: lab.LabDomain,
) -> None:
    assert domain_agent_not_started.wait_console()
    code, out, err = qgactl(
        "-c", domain_agent_not_started.uri, "wait", domain_agent_not_started, "--timeout", "3"
    )
    assert (code, out) == (5, b"")
    assert b"not connected" in err


@BOTH
def test_wait_prints_the_guests_ipv4_address(target: Target) -> None:
    code, out, err = qgactl(*target.args("wait", "--for", "ipv4", "--timeout", "30"))
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["addresses"] == ["10.0.2.15"]
    code, out, err = qgactl(*target.args("wait", "--timeout", "30"))  # --for agent
    assert code == 0, err
    assert json.loads(out)[0]["addresses"] == []


def test_several_targets_one_row_each(
    lab_domain: lab.LabDomain, domain_no_channel: lab.LabDomain
) -> None:
    code, out, err = qgactl(
        "-c", lab_domain.uri, "wait", lab_domain, domain_no_channel, "--for", "ip",
        "--timeout", "30",
    )  # fmt: skip
    rows = {row["target"]: row for row in json.loads(out)}
    assert code == 4
    assert rows[lab_domain]["ok"] and rows[lab_domain]["addresses"] == ["10.0.2.15"]
    assert (rows[domain_no_channel]["ok"], rows[domain_no_channel]["exit_code"]) == (False, 4)
    assert b"add-channel" in err
