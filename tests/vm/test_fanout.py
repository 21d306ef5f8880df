"""Fan-out on real guests: globs and --all over domains in every state, exec over several
guests. Each guest's state is the lab's own (running with an agent, shut off, without a
channel, channel but no agent), so every row's outcome is known without asking qgactl."""

from __future__ import annotations

import os
import re

import pytest

from tests.vm.guestside import socket_raw


@pytest.fixture
def every_kind(lab_domain, domain_off, domain_no_channel, domain_agent_not_started):
    return {
        str(lab_domain): 0,
        str(domain_off): 4,  # shut off
        str(domain_no_channel): 4,  # no agent channel
        str(domain_agent_not_started): 4,  # channel, agent not connected
    }


def this_sessions_glob() -> str:
    return f"qgactl-test-{os.getpid()}-*"


def test_a_glob_gives_a_row_per_domain_in_every_state(qgactl, every_kind) -> None:
    run = qgactl("-o", "json", "ping", this_sessions_glob(), timeout=120)
    rows = {row["target"]: row for row in run.json()}
    assert {name: rows[name]["exit_code"] for name in every_kind} == every_kind
    assert run.code == 4  # the first failure's code
    assert run.stderr.count("\n") == len([c for c in every_kind.values() if c])


def test_all_is_the_running_domains_with_a_channel(
    qgactl, lab_domain, domain_off, domain_no_channel, domain_agent_not_started
) -> None:
    run = qgactl("-o", "json", "ping", "--all", timeout=120)
    targets = {row["target"] for row in run.json()}
    assert {str(lab_domain), str(domain_agent_not_started)} <= targets
    assert not targets & {str(domain_off), str(domain_no_channel)}  # off, or no channel


def test_exec_over_two_guests_prefixes_lines_and_returns_the_first_failure(
    qgactl, lab_domain, plain_qemu_guest
) -> None:
    sockets = [str(lab_domain.dedicated_socket), str(plain_qemu_guest.socket_path)]
    args = [part for path in sockets for part in ("--socket", path)]
    names = {sockets[0]: "lab", sockets[1]: "plain"}
    for path, name in names.items():  # tell each guest its name, without qgactl
        socket_raw(path)("guest-exec", {"path": "/bin/sh", "arg": ["-c", f"echo {name} >/tmp/who"]})
    script = 'n=$(cat /tmp/who); echo "one $n"; echo two; [ "$n" = plain ] && exit 3; exit 0'
    run = qgactl(*args, "exec", "-s", "--", script, timeout=120)
    assert run.code == 3, run.stderr
    for path, name in names.items():
        assert f"{path}: one {name}\n" in run.stdout and f"{path}: two\n" in run.stdout
    run = qgactl("-o", "json", *args, "exec", "--", "cat", "/tmp/who", timeout=120)
    rows = {row["target"]: row for row in run.json()}
    assert {path: rows[path]["stdout"].strip() for path in sockets} == names
    assert all(rows[path]["exit_code"] == 0 and rows[path]["ok"] for path in sockets)


def test_exec_on_a_glob_with_a_domain_that_cannot_run_exits_125(qgactl, every_kind) -> None:
    run = qgactl("exec", "-g", this_sessions_glob(), "--", "hostname", timeout=120)
    assert run.code == 125
    assert re.search(r"--- qgactl-test-\d+-lab\nqgactl-lab\n", run.stdout)


def test_two_real_hosts_and_a_dead_one(
    qgactl, lab_domain, second_host, second_host_domain, tmp_path
) -> None:
    import socket

    dead_path = tmp_path / "dead.sock"  # accepts, never answers: libvirt's open blocks on it
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(dead_path))
    dead.listen(8)
    dead_uri = f"qemu+unix:///system?socket={dead_path}"
    hosts = ["qemu:///system", second_host.uri, dead_uri]
    args = [part for uri in hosts for part in ("-c", uri)]
    try:
        names = [str(lab_domain), str(second_host_domain)]
        run = qgactl("-t", "3", "-o", "json", *args, "ping", *names, timeout=120)
    finally:
        dead.close()
    rows = {(row["host"], row["target"]): row for row in run.json()}
    assert len(rows) == 6  # each name on each host
    assert rows[hosts[0], names[0]]["ok"] and rows[hosts[1], names[1]]["ok"]
    assert rows[hosts[0], names[1]]["exit_code"] == rows[hosts[1], names[0]]["exit_code"] == 3
    assert all(rows[hosts[2], name]["exit_code"] == 5 for name in names)  # the dead host
    assert run.code == 3  # the first failure's
    table = qgactl("-t", "3", "-o", "table", *args[:4], "ping", "--all", env={"COLUMNS": "300"})
    assert "HOST" in table.stdout
    assert re.search(rf"{second_host_domain}\s+{re.escape(second_host.uri)}\s+ok", table.stdout)


def test_information_commands_fan_out_over_both_agent_versions(
    qgactl, lab_domain, lab_domain10
) -> None:
    glob = f"qgactl-test-{os.getpid()}-lab*"  # lab (qemu-ga 7.2) and lab10 (10.0)
    run = qgactl("-o", "json", "guestinfo", "--os", "--users", "--load", glob, timeout=120)
    assert run.code == 0, run.stderr
    rows = {row["target"]: row for row in run.json()}
    assert set(rows) == {str(lab_domain), str(lab_domain10)}
    assert all(row["os"]["id"] == "qgactllab" for row in rows.values())
    assert any(user["user"] == "qgauser" for user in rows[str(lab_domain)]["users"])
    assert "load" not in rows[str(lab_domain)]  # 7.2 has no guest-get-load: left out
    assert rows[str(lab_domain10)]["load"]["load1m"] >= 0
    run = qgactl("-o", "json", "load", glob, timeout=120)
    rows = {row["target"]: row for row in run.json()}
    assert run.code == 6  # 7.2's row: the command is missing (the first failure's code)
    assert rows[str(lab_domain)]["ok"] is False and "10.0" in run.stderr
    assert rows[str(lab_domain10)]["ok"] is True
