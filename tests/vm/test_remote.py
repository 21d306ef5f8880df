"""A remote libvirt URI for real: qemu+ssh:// to an sshd of our own on loopback.

libvirt runs `ssh` and the remote `virt-ssh-helper`, exactly as for another host; only the
address is 127.0.0.1. A remote host's sockets are not on this machine, so qgactl must always
go through libvirt there, even for a domain with a dedicated channel.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ssh_uri(libvirt_ready):
    for tool in (SSHD, shutil.which("ssh-keygen"), shutil.which("ssh")):
        if not tool or not os.path.exists(tool):
            pytest.fail("openssh-server/openssh-client missing: run lab/install-deps.sh")
    directory = Path(tempfile.mkdtemp(prefix="qgactl-sshd-"))
    port = _free_port()
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / key)],
            check=True,
        )
    shutil.copy(directory / "client_key.pub", directory / "authorized_keys")
    (directory / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {directory}/host_key\n"
        f"AuthorizedKeysFile {directory}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    sshd = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
        stderr=open(directory / "sshd.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or sshd.poll() is not None:
                    pytest.fail(f"sshd did not start: {(directory / 'sshd.log').read_text()}")
                time.sleep(0.05)
        key = directory / "client_key"
        yield f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={key}&no_verify=1"
    finally:
        os.kill(sshd.pid, signal.SIGTERM)
        sshd.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def test_domains_over_ssh_use_libvirt_even_with_a_dedicated_channel(qgactl, ssh_uri, lab_domain):
    run = qgactl("-c", ssh_uri, "-o", "json", "domains")
    assert run.code == 0, run.stderr
    [lab] = [d for d in run.json() if d["name"] == lab_domain]
    assert lab["state"] == "running"
    assert {c["name"] for c in lab["channels"]} >= {"org.qemu.guest_agent.1"}
    assert lab["transport"] == "libvirt" and lab["socket"] is None


def test_ping_info_osinfo_over_ssh(qgactl, ssh_uri, lab_domain):
    run = qgactl("-c", ssh_uri, "-o", "json", "ping", lab_domain)
    assert run.code == 0, run.stderr
    assert run.json()[0]["transport"] == "libvirt"
    run = qgactl("-c", ssh_uri, "-o", "json", "osinfo", lab_domain)
    assert run.code == 0, run.stderr
    assert run.json()["id"] == "qgactllab"
    run = qgactl("-c", ssh_uri, "-o", "json", "info", lab_domain)
    assert run.code == 0 and run.json()["version"]


def test_errors_over_ssh_keep_their_exit_codes(
    qgactl, ssh_uri, domain_off, domain_agent_not_started
):
    assert qgactl("-c", ssh_uri, "ping", "qgactl-test-no-such-domain").code == 3
    assert qgactl("-c", ssh_uri, "ping", domain_off).code == 4
    domain_agent_not_started.wait_console()
    run = qgactl("-c", ssh_uri, "ping", domain_agent_not_started)
    assert run.code == 4 and "not connected" in run.stderr


def test_a_remote_socket_is_refused(qgactl, ssh_uri, lab_domain):
    run = qgactl("-c", ssh_uri, "--transport", "socket", "ping", lab_domain)
    assert run.code == 2
    [line] = run.stderr.splitlines()
    assert "remote host" in line and "--transport libvirt" in line


def test_unreachable_remote_host_is_a_libvirt_error(qgactl, libvirt_ready):
    port = _free_port()  # nothing listens there
    run = qgactl("-c", f"qemu+ssh://root@127.0.0.1:{port}/system?no_verify=1", "domains")
    assert run.code == 9
    [line] = run.stderr.splitlines()
    assert "hint:" in line


def test_fan_out_over_a_local_and_an_ssh_host(qgactl, ssh_uri, lab_domain):
    run = qgactl("-o", "json", "-c", "qemu:///system", "-c", ssh_uri, "osinfo", lab_domain)
    assert run.code == 0, run.stderr
    rows = run.json()
    assert [row["host"] for row in rows] == ["qemu:///system", ssh_uri]
    assert all(row["ok"] and row["id"] == "qgactllab" for row in rows)
