"""qgactl against real guests: under libvirtd (both transports) and under plain QEMU."""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest


def by_name(run, name):
    return next(d for d in run.json() if d["name"] == name)


# The same libvirtd through qgactl's own RPC client (qgactl/virtrpc.py: the local
# qemu:///system) and through libvirt-python (any other URI, here the same socket named).
LIBVIRT_PYTHON = ("-c", "qemu:///system?socket=/run/libvirt/libvirt-sock")
CLIENTS = pytest.mark.parametrize("via", [(), LIBVIRT_PYTHON], ids=["virtrpc", "libvirt-python"])


def test_the_local_system_uri_is_reached_without_importing_libvirt_python(qgactl, lab_domain):
    def imports(*via):
        run = qgactl(*via, "-o", "json", "ping", lab_domain, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert run.code == 0 and run.json()[0]["ok"], run.stderr
        return {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()}

    assert "libvirt" not in imports()
    assert "libvirt" in imports(*LIBVIRT_PYTHON)


# -- discovery -------------------------------------------------------------------------------


def test_domains_shows_state_agent_and_transport(qgactl, lab_domain, domain_off, domain_no_channel):
    run = qgactl("-o", "json", "domains")
    assert run.code == 0, run.stderr
    lab = by_name(run, lab_domain)
    assert lab["state"] == "running" and lab["agent"] == "connected"
    # libvirt's connected .0 is preferred (faster than a fresh chardev client)
    assert lab["transport"] == "libvirt" and lab["socket"] is None
    assert {c["name"] for c in lab["channels"]} == {
        "org.qemu.guest_agent.0",
        "org.qemu.guest_agent.1",
    }
    off = by_name(run, domain_off)
    assert off["state"] == "shut off" and off["id"] is None and off["agent"] == "configured"
    assert by_name(run, domain_no_channel)["agent"] == "none"


def test_domains_table(qgactl, lab_domain):
    run = qgactl("-o", "table", "domains")
    assert run.code == 0, run.stderr
    [row] = [line for line in run.stdout.splitlines() if str(lab_domain) in line.split()]
    assert "running" in row and "connected" in row and "libvirt" in row


@CLIENTS
def test_lookup_by_uuid_and_id(qgactl, via, lab_domain):
    [info] = [d for d in qgactl(*via, "-o", "json", "domains").json() if d["name"] == lab_domain]
    for key in (info["uuid"], str(info["id"])):
        run = qgactl(*via, "-o", "json", "--transport", "libvirt", "ping", key)
        assert run.code == 0, run.stderr
        assert run.json()[0]["target"] == key


@CLIENTS
def test_a_glob_is_matched_against_the_hosts_domains(qgactl, via, lab_domain):
    run = qgactl(*via, "-o", "json", "ping", f"{lab_domain}*")
    assert run.code == 0, run.stderr
    assert {row["target"]: row["ok"] for row in run.json()}.get(lab_domain) is True


# -- the agent through libvirt -------------------------------------------------------------


def test_ping_info_osinfo_raw_through_libvirt(qgactl, lab_domain):
    via = ("--transport", "libvirt")
    run = qgactl(*via, "-o", "json", "ping", lab_domain)
    assert run.code == 0, run.stderr
    assert run.json()[0]["transport"] == "libvirt"

    run = qgactl(*via, "-o", "json", "info", lab_domain)
    assert run.code == 0, run.stderr
    names = {c["name"] for c in run.json()["commands"]}
    assert {"guest-ping", "guest-exec", "guest-fsfreeze-freeze"} <= names

    run = qgactl(*via, "-o", "json", "osinfo", lab_domain)
    assert run.code == 0, run.stderr
    assert run.json()["id"] == "qgactllab"

    run = qgactl(*via, "raw", lab_domain, "guest-get-host-name")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"return": {"host-name": "qgactl-lab"}}


@CLIENTS
def test_agent_error_through_libvirt_is_exit_6(qgactl, via, lab_domain):
    run = qgactl(*via, "--transport", "libvirt", "raw", lab_domain, "guest-no-such-command")
    assert run.code == 6
    [line] = run.stderr.splitlines()
    assert "guest-no-such-command" in line and "has not been found" in line


def test_sync_commands_are_refused_through_libvirt(qgactl, lab_domain):
    """guest-sync-delimited through qemuAgentCommand breaks the domain's agent in libvirtd."""
    run = qgactl("--transport", "libvirt", "raw", lab_domain, "guest-sync-delimited", '{"id":1}')
    assert run.code == 2
    assert "not allowed through libvirt" in run.stderr
    assert qgactl("--transport", "libvirt", "ping", lab_domain).code == 0


def test_dedicated_channel_is_reached_directly_while_libvirt_holds_0(qgactl, lab_domain):
    run = qgactl("--transport", "socket", "-o", "json", "ping", lab_domain)
    assert run.code == 0, run.stderr
    assert run.json()[0]["transport"] == "socket"
    run = qgactl("--socket", str(lab_domain.dedicated_socket), "-o", "json", "osinfo")
    assert run.code == 0, run.stderr
    assert run.json()["id"] == "qgactllab"
    # and libvirt's own channel still works at the same time
    assert qgactl("--transport", "libvirt", "ping", lab_domain).code == 0


def test_ping_several_domains_concurrently(
    qgactl, lab_domain, domain_off, domain_no_channel, domain_agent_not_started
):
    targets = [lab_domain, domain_off, domain_no_channel, domain_agent_not_started, "nope-x"]
    run = qgactl("-o", "json", "ping", *targets)
    results = {r["target"]: r for r in run.json()}
    assert results[lab_domain]["ok"] is True
    assert results[domain_off]["exit_code"] == 4
    assert results[domain_no_channel]["exit_code"] == 4
    assert results[domain_agent_not_started]["exit_code"] == 4
    assert results["nope-x"]["exit_code"] == 3
    assert run.code == 4  # the first failure in argument order
    assert len(run.stderr.splitlines()) == 4


# -- every error case, for real -------------------------------------------------------------


@CLIENTS
def test_no_such_domain(qgactl, via, libvirt_ready):
    run = qgactl(*via, "ping", "qgactl-test-does-not-exist")
    assert run.code == 3
    [line] = run.stderr.splitlines()
    assert "not found" in line and "qgactl domains" in line


@CLIENTS
def test_domain_off(qgactl, via, domain_off):
    run = qgactl(*via, "info", domain_off)
    assert run.code == 4
    [line] = run.stderr.splitlines()
    assert "not running" in line and "virsh start" in line


@CLIENTS
def test_domain_off_through_libvirt_transport_too(qgactl, via, domain_off):
    run = qgactl(*via, "--transport", "libvirt", "ping", domain_off)
    assert run.code == 4 and "virsh start" in run.stderr


@CLIENTS
def test_no_channel(qgactl, via, domain_no_channel):
    run = qgactl(*via, "ping", domain_no_channel)
    assert run.code == 4
    [line] = run.stderr.splitlines()
    assert "no guest agent channel" in line and f"qgactl add-channel {domain_no_channel}" in line


@CLIENTS
def test_channel_but_agent_not_started(qgactl, via, domain_agent_not_started):
    domain_agent_not_started.wait_console()
    run = qgactl(*via, "ping", domain_agent_not_started)
    assert run.code == 4
    [line] = run.stderr.splitlines()
    assert "not connected" in line and "qemu-guest-agent" in line and "--wait" in line


def test_ping_wait_gives_up_after_the_wait(qgactl, domain_agent_not_started):
    started = time.monotonic()
    run = qgactl("-t", "1", "ping", "--wait", "3", domain_agent_not_started)
    assert run.code == 4
    assert 2.5 < time.monotonic() - started < 15


@CLIENTS
def test_agent_timeout_through_libvirt(qgactl, via, lab_domain):
    """A guest command made slow on purpose (the lab's hwclock sleeps) times out: exit 5."""
    direct = ("--socket", str(lab_domain.dedicated_socket))
    write_file(qgactl, direct, "/run/qgactl-slow-hwclock", b"4\n")
    try:
        run = qgactl(*via, "--transport", "libvirt", "-t", "1", "raw", lab_domain, "guest-set-time")
        assert run.code == 5, run.stderr
        [line] = run.stderr.splitlines()
        assert "no answer" in line and "hint:" in line
    finally:
        delete_file(qgactl, direct, "/run/qgactl-slow-hwclock")
    # libvirt recovers by itself (it re-syncs); --wait rides over that
    run = qgactl(*via, "--transport", "libvirt", "-t", "5", "ping", "--wait", "30", lab_domain)
    assert run.code == 0, run.stderr


def test_agent_timeout_on_a_socket_resyncs(qgactl, plain_qemu_guest):
    direct = ("--socket", str(plain_qemu_guest.socket_path))
    write_file(qgactl, direct, "/run/qgactl-slow-hwclock", b"2\n")
    try:
        run = qgactl(*direct, "-t", "1", "raw", "guest-set-time")
        assert run.code == 5, run.stderr
        assert "no answer" in run.stderr
        # the late reply to guest-set-time arrives later: the next client must not take it
        time.sleep(2.5)
    finally:
        delete_file(qgactl, direct, "/run/qgactl-slow-hwclock")
    run = qgactl(*direct, "raw", "guest-get-host-name")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["return"] == {"host-name": "qgactl-lab"}


# -- plain QEMU: straight to the chardev socket -----------------------------------------------


def test_plain_qemu_socket(qgactl, plain_qemu_guest):
    direct = ("--socket", str(plain_qemu_guest.socket_path))
    run = qgactl(*direct, "-o", "json", "ping")
    assert run.code == 0, run.stderr
    run = qgactl(*direct, "-o", "json", "info")
    assert run.code == 0 and run.json()["version"]
    run = qgactl(*direct, "-o", "json", "osinfo")
    assert run.code == 0 and run.json()["pretty_name"]


def test_plain_qemu_busy_channel_times_out_with_a_hint(qgactl, plain_qemu_guest):
    with socket.socket(socket.AF_UNIX) as holder:
        holder.connect(str(plain_qemu_guest.socket_path))
        run = qgactl("--socket", str(plain_qemu_guest.socket_path), "-t", "1", "ping")
    # a QEMU chardev accepts one client: the second waits in the backlog, no answer comes
    assert run.code == 5
    assert "another client" in run.stderr
    assert qgactl("--socket", str(plain_qemu_guest.socket_path), "ping", "--wait", "10").code == 0


# -- helpers: guest files through the agent (the guest is ours, the host agent is never used) ---


def agent_json(qgactl, direct, command, arguments):
    run = qgactl(*direct, "raw", command, json.dumps(arguments))
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)["return"]


def write_file(qgactl, direct, path, data: bytes):
    handle = agent_json(qgactl, direct, "guest-file-open", {"path": path, "mode": "w"})
    try:
        agent_json(
            qgactl,
            direct,
            "guest-file-write",
            {"handle": handle, "buf-b64": base64.b64encode(data).decode()},
        )
    finally:
        agent_json(qgactl, direct, "guest-file-close", {"handle": handle})


def delete_file(qgactl, direct, path):
    result = agent_json(
        qgactl,
        direct,
        "guest-exec",
        {"path": "/bin/rm", "arg": ["-f", path], "capture-output": False},
    )
    assert "pid" in result


# -- commands that answer only when they fail (success-response: false) ------------------------


def test_raw_shutdown_succeeds_without_a_reply(qgactl, lab_paths, tmp_path):
    from lab import lab

    with lab.PlainQemuGuest(tmp_path) as guest:  # a guest of its own: it powers off
        run = qgactl("--socket", str(guest.socket_path), "-t", "20", "raw", "guest-shutdown")
        assert run.code == 0, run.stderr
        assert run.stdout == ""  # there was no reply to print
        assert guest.proc.wait(30) == 0


def test_raw_shutdown_error_still_comes_back(qgactl, plain_qemu_guest):
    run = qgactl(
        "--socket", str(plain_qemu_guest.socket_path), "raw", "guest-shutdown", '{"mode":"bogus"}'
    )
    assert run.code == 6
    assert "mode is invalid" in run.stderr and run.seconds < 5
    assert qgactl("--socket", str(plain_qemu_guest.socket_path), "ping").code == 0
