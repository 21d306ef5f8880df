"""The Python API against a real qemu-ga run on this host (fast tier): read-only calls only,
and the documented errors. Its state-changing commands are blocked (tests/conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import qgactl

pytestmark = pytest.mark.agent


def test_import_loads_neither_click_nor_rich():
    code = (
        "import qgactl, sys; qgactl.connect; qgactl.targets; qgactl.Guest; qgactl.NotFound;"
        "import qgactl.api;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich'))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(run.stdout) == []


def test_all_lists_what_exists():
    for name in qgactl.__all__:
        assert getattr(qgactl, name) is not None
    assert issubclass(qgactl.AgentTimeout, qgactl.QgactlError)
    with pytest.raises(AttributeError):
        qgactl.no_such_name  # noqa: B018


def test_read_only_calls(host_agent):
    with qgactl.connect(socket=str(host_agent.socket_path)) as guest:
        guest.ping()
        info = guest.info()
        enabled = {command.name for command in info.commands if command.enabled}
        assert "guest-ping" in enabled and "guest-exec" not in enabled
        assert guest.osinfo().id  # this machine's /etc/os-release
        assert guest.hostname()
        assert isinstance(guest.call("guest-get-time"), int)


def test_the_agents_refusal_is_an_agent_command_error(host_agent):
    guest = qgactl.connect(socket=str(host_agent.socket_path))
    with pytest.raises(qgactl.AgentCommandError) as caught:
        guest.call("guest-no-such-command")
    assert caught.value.error_class == "CommandNotFound"
    assert caught.value.exit_code == qgactl.ExitCode.AGENT_ERROR
    guest.ping()  # the connection survived the refusal
    guest.close()


def test_missing_socket_is_not_found(tmp_path):
    guest = qgactl.connect(socket=str(tmp_path / "nothing.sock"))
    with pytest.raises(qgactl.NotFound):
        guest.ping()


def test_a_domain_or_a_socket_not_both():
    with pytest.raises(qgactl.InvalidUsage):
        qgactl.connect("vm1", socket="/run/qga.sock")
    with pytest.raises(qgactl.InvalidUsage):
        qgactl.connect()


def test_targets_over_a_socket_glob(host_agent, tmp_path):
    missing = str(tmp_path / "gone.sock")
    with qgactl.targets(sockets=[str(host_agent.socket_path), missing]) as fleet:
        results = fleet.map(lambda guest: guest.hostname())
    assert [result.guest.socket for result in results] == [str(host_agent.socket_path), missing]
    assert results[0].ok and results[0].value
    assert isinstance(results[1].error, qgactl.NotFound)


def test_doctor_returns_the_checks_as_data(host_agent, tmp_path):
    checks = qgactl.doctor(socket=str(host_agent.socket_path))
    assert [c.check for c in checks] == ["socket", "ping", "version", "frozen", "disabled"]
    by_name = {c.check: c for c in checks}
    assert by_name["ping"].status == "pass"
    assert "guest-exec" in by_name["disabled"].detail  # the fixture's blocklist, as data

    missing = qgactl.doctor(socket=str(tmp_path / "gone.sock"))
    assert (missing[0].status, missing[0].exit_code) == ("fail", qgactl.ExitCode.NOT_FOUND)
    assert {c.status for c in missing[1:]} == {"skipped"}


def test_ping_gives_the_round_trip_and_the_transport(host_agent):
    with qgactl.connect(socket=str(host_agent.socket_path)) as guest:
        assert guest.transport is None  # nothing opened yet
        seconds = guest.ping()
        assert isinstance(seconds, float) and seconds > 0
        assert guest.transport == "socket"


def test_the_info_models_and_require(host_agent):
    with qgactl.connect(socket=str(host_agent.socket_path)) as guest:
        reply = guest.hostname_info()
        assert reply.host_name == guest.hostname() == guest.call("guest-get-host-name")["host-name"]
        assert guest.time().nanoseconds == pytest.approx(guest.call("guest-get-time"), abs=60e9)
        assert isinstance(guest.users(), tuple)
        guest.require("guest-ping", "guest-info")  # enabled: passes
        with pytest.raises(qgactl.AgentCommandError) as caught:
            guest.require("guest-ping", "guest-exec")  # the fixture blocks guest-exec
        assert "guest-exec" in caught.value.message
        guest.ping()  # the refusal left the connection usable


def test_copy_in_refuses_a_bad_host_side_before_reaching_the_agent(tmp_path):
    from qgactl.transfer import HostFileError

    # no agent at this socket: the refusals must come before any attempt to reach it
    guest = qgactl.connect(socket=str(tmp_path / "nothing.sock"))
    with pytest.raises(HostFileError, match="not a directory"):
        guest.copy_in(tmp_path / "nothing.sock", "/tmp/", recursive=True)
    (tmp_path / "dir").mkdir()
    with pytest.raises(HostFileError, match="Is a directory"):
        guest.copy_in(tmp_path / "dir", "/tmp/", recursive=False)
    with pytest.raises(HostFileError, match="No such file"):
        guest.copy_in(tmp_path / "missing", "/tmp/")
