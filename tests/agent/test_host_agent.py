"""qgactl against a real qemu-ga running on this host (fast tier)."""

from __future__ import annotations

import json
import socket
import time

import pytest

pytestmark = pytest.mark.agent


def test_ping_answers(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "-o", "json", "ping")
    assert run.code == 0, run.stderr
    [result] = run.json()
    assert result["ok"] is True
    assert result["transport"] == "socket"
    assert 0 < result["milliseconds"] < 5000
    assert run.stderr == ""


def test_info_lists_commands_and_the_blocked_ones(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "-o", "json", "info")
    assert run.code == 0, run.stderr
    info = run.json()
    assert info["version"].startswith("7.") or info["version"][0].isdigit()
    commands = {c["name"]: c for c in info["commands"]}
    assert commands["guest-ping"]["enabled"] is True
    # the fixture blocks every state-changing command: qemu-ga reports them disabled
    assert commands["guest-fsfreeze-freeze"]["enabled"] is False
    assert commands["guest-shutdown"]["success_response"] is False


def test_info_table_on_request(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "-o", "table", "info")
    assert run.code == 0, run.stderr
    assert "guest-ping" in run.stdout and "disabled" in run.stdout


def test_raw_prints_the_reply_as_sent(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "raw", '{"execute":"guest-get-time"}')
    assert run.code == 0, run.stderr
    reply = json.loads(run.stdout)
    assert isinstance(reply["return"], int)
    assert abs(reply["return"] / 1e9 - time.time()) < 60


def test_raw_by_command_name_with_arguments(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "raw", "guest-sync", '{"id": 4242}')
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"return": 4242}


def test_raw_pretty(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "raw", "guest-get-osinfo", "--pretty")
    assert run.code == 0, run.stderr
    assert run.stdout.startswith('{\n  "return": {')


def test_osinfo_model(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "-o", "json", "osinfo")
    assert run.code == 0, run.stderr
    osinfo = run.json()
    assert osinfo["machine"] == "x86_64"
    assert osinfo["kernel_release"]


def test_raw_output_mode_is_the_agents_reply(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "-o", "raw", "osinfo")
    assert run.code == 0, run.stderr
    assert "kernel-release" in json.loads(run.stdout)["return"]


def test_blocked_command_is_an_agent_error(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "raw", "guest-fstrim")
    assert run.code == 6
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert "guest-fstrim" in line and "disabled" in line and "hint:" in line


def test_unknown_command(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "raw", "guest-no-such-thing")
    assert run.code == 6
    assert "CommandNotFound" in run.stderr and "Traceback" not in run.stderr


def test_bad_argument_is_the_agents_generic_error(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "raw", "guest-ping", '{"bogus": 1}')
    assert run.code == 6
    assert "GenericError" in run.stderr


def test_dirty_channel_left_by_a_dead_client(qgactl, host_agent):
    """A client that died mid-request leaves half a JSON object in the agent's parser."""
    with socket.socket(socket.AF_UNIX) as dead:
        dead.connect(host_agent.socket_path)
        dead.sendall(b'{"execute": "guest-info", "argum')
    run = qgactl("--socket", host_agent.socket_path, "-o", "json", "osinfo")
    assert run.code == 0, run.stderr
    assert run.json()["machine"] == "x86_64"


# Stale replies meant for a client that left are tested against a real QEMU chardev
# (tests/vm/test_libvirt.py::test_agent_timeout_on_a_socket_resyncs) and the scripted agent:
# a host-run qemu-ga in unix-listen mode sends such a reply to the dead connection instead,
# and if that client had already closed with the reply unread, qemu-ga's next read gets
# ECONNRESET and it exits (seen here under load) -- a test of qemu-ga, not of qgactl.


def test_second_client_times_out_with_a_hint(qgactl, host_agent):
    """One client at a time: while another holds the socket we must time out, not hang."""
    with socket.socket(socket.AF_UNIX) as holder:
        holder.connect(host_agent.socket_path)
        holder.sendall(b'{"execute":"guest-ping"}')
        holder.recv(100)  # the holder is served: it is now the agent's client
        run = qgactl("--socket", host_agent.socket_path, "-t", "1", "ping")
    assert run.code == 5, run.stderr
    assert run.seconds < 4
    [line] = run.stderr.splitlines()
    assert "another client" in line
    # and once the holder is gone the agent serves us again
    run = qgactl("--socket", host_agent.socket_path, "ping")
    assert run.code == 0, run.stderr


def test_ping_wait_returns_at_once_when_up(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "ping", "--wait", "30")
    assert run.code == 0 and run.seconds < 10


def test_debug_traces_the_wire(qgactl, host_agent):
    run = qgactl("--socket", host_agent.socket_path, "--debug", "-o", "json", "ping")
    assert run.code == 0
    assert "--> \\xff" in run.stderr and "guest-sync-delimited" in run.stderr
    assert '<-- {"return": {}}' in run.stderr


def test_raw_request_from_stdin(host_agent):
    """`raw -` reads the request from stdin, so a secret never shows in `ps`."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "qgactl", "--socket", host_agent.socket_path, "raw", "-"],
        input=b'{"execute": "guest-sync", "arguments": {"id": 99}}',
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"return": 99}
