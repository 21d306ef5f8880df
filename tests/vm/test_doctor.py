"""`qgactl doctor` on real guests: all checks passing, and each check failing for real.

The freeze test freezes the lab GUEST (through libvirt, on its .0 agent) and always thaws in a
finally; nothing here freezes the host-run agent (it blocks freezing anyway).
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager

import pytest

CHECKS = ["libvirt", "domain", "channel", "connected", "socket"]
AGENT_CHECKS = ["ping", "version", "frozen", "disabled"]


def doctor(qgactl, *args):
    run = qgactl("-o", "json", *args)
    report = run.json()
    assert report["exit_code"] == run.code and report["ok"] == (run.code == 0)
    return run.code, {check["check"]: check for check in report["checks"]}, report


def statuses(checks):
    return {name: check["status"] for name, check in checks.items()}


def failed_at(checks, name, names=CHECKS + AGENT_CHECKS):
    """``name`` failed with a fix, the ones before it passed, the ones after were skipped."""
    assert list(checks) == names
    at = names.index(name)
    assert [checks[n]["status"] for n in names[:at]] == ["pass"] * at, statuses(checks)
    assert checks[name]["status"] == "fail" and checks[name]["fix"], checks[name]
    assert {checks[n]["status"] for n in names[at + 1 :]} <= {"skipped"}, statuses(checks)
    return checks[name]


def test_all_pass_through_libvirt(qgactl, lab_domain):
    code, checks, _ = doctor(qgactl, "--transport", "libvirt", "doctor", lab_domain)
    assert code == 0, checks
    assert list(checks) == CHECKS + AGENT_CHECKS
    assert set(statuses(checks).values()) == {"pass"}
    assert "through libvirt" in checks["channel"]["detail"]
    assert "held by libvirtd" in checks["socket"]["detail"]
    assert "via libvirt" in checks["ping"]["detail"]
    assert checks["version"]["detail"].startswith("qemu-ga 7.2")
    assert checks["frozen"]["detail"] == "thawed"
    assert "guest-get-devices" in checks["disabled"]["detail"]  # Windows only


def test_all_pass_on_the_dedicated_socket(qgactl, lab_domain):
    code, checks, _ = doctor(qgactl, "--transport", "socket", "doctor", lab_domain)
    assert code == 0, checks
    assert f"direct to {lab_domain.dedicated_socket}" in checks["channel"]["detail"]
    assert checks["socket"]["detail"].endswith("listens; free")


def test_table_on_a_terminal(qgactl, lab_domain):
    run = qgactl("-o", "table", "doctor", lab_domain)
    assert run.code == 0, run.stderr
    assert "CHECK" in run.stdout and "FIX" in run.stdout and "qemu-ga 7.2" in run.stdout


def test_libvirt_unreachable(qgactl):
    uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    code, checks, _ = doctor(qgactl, "-c", uri, "doctor", "vm1")
    assert code == 9
    failed_at(checks, "libvirt")


def test_no_such_domain(qgactl, libvirt_ready):
    code, checks, _ = doctor(qgactl, "doctor", "qgactl-test-no-such-domain")
    assert code == 3
    failed_at(checks, "domain")


def test_domain_off(qgactl, domain_off):
    """Off, with an agent channel in its definition: starting it is the fix."""
    code, checks, _ = doctor(qgactl, "doctor", domain_off)
    assert code == 4
    check = checks["domain"]
    assert check["status"] == "fail" and "shut off" in check["detail"]
    assert check["fix"] == f"start it: virsh start {domain_off}"
    assert checks["channel"]["status"] == "pass"
    assert "org.qemu.guest_agent.0 in the persistent XML" in checks["channel"]["detail"]
    assert {checks[n]["status"] for n in CHECKS[3:] + AGENT_CHECKS} == {"skipped"}


@pytest.fixture(scope="module")
def domain_off_no_channel(libvirt_ready):
    """Defined, never started, no agent channel (no boot: nothing to wait for)."""
    from lab import lab

    name = lab.test_domain_name("offnochan")
    domain = lab.start_domain(name, agent_channel=False, start=False)
    try:
        yield domain
    finally:
        lab.destroy_and_undefine(name)


def test_domain_off_without_a_channel(qgactl, domain_off_no_channel):
    """Starting it would not help: the fix says to add the channel first."""
    name = domain_off_no_channel
    code, checks, _ = doctor(qgactl, "doctor", name)
    assert code == 4
    assert checks["domain"]["status"] == "fail"
    assert checks["domain"]["fix"] == (
        f"no agent channel: qgactl add-channel {name}, then start it: virsh start {name}"
    )
    channel = checks["channel"]
    assert channel["status"] == "fail" and "persistent XML" in channel["detail"]
    assert {checks[n]["status"] for n in CHECKS[3:] + AGENT_CHECKS} == {"skipped"}


def test_no_channel(qgactl, domain_no_channel):
    code, checks, _ = doctor(qgactl, "doctor", domain_no_channel)
    assert code == 4
    check = failed_at(checks, "channel")
    assert f"qgactl add-channel {domain_no_channel}" in check["fix"]


def test_agent_not_started(qgactl, domain_agent_not_started):
    assert domain_agent_not_started.wait_console()
    code, checks, _ = doctor(qgactl, "doctor", domain_agent_not_started)
    assert code == 4
    check = failed_at(checks, "connected")
    assert "disconnected" in check["detail"]
    for words in ("apt install", "dnf install", "zypper install", "virtio-win", "--wait 60"):
        assert words in check["fix"]
    # no OS recorded in the XML: every OS's way, each the right one for it
    assert "Debian/Ubuntu: `systemctl start qemu-guest-agent`" in check["fix"]
    assert "RHEL/Fedora: `systemctl enable --now qemu-guest-agent`" in check["fix"]


LIBOSINFO = "http://libosinfo.org/xmlns/libvirt/domain/1.0"


@contextmanager
def recorded_os(conn, domain, os_id):
    """The live domain XML records the guest's OS as virt-install does (libosinfo metadata)."""
    import libvirt

    dom = conn.lookupByName(domain)
    element = f"<libosinfo><os id='{os_id}'/></libosinfo>"
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, element, "libosinfo", LIBOSINFO, flags)
    try:
        assert os_id in dom.XMLDesc(0)
        yield
    finally:
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, LIBOSINFO, flags)


@pytest.mark.parametrize(
    ("os_id", "fix", "not_in_fix"),
    [
        # Debian's unit is static (udev starts it): `enable --now` only prints a long warning
        ("http://debian.org/debian/12", "systemctl start qemu-guest-agent", "enable"),
        ("http://ubuntu.com/ubuntu/22.04", "systemctl start qemu-guest-agent", "dnf"),
        ("http://fedoraproject.org/fedora/39", "systemctl enable --now qemu-guest-agent", "apt"),
        ("http://microsoft.com/win/2k22", "virtio-win", "systemctl"),
    ],
)
def test_agent_not_started_fix_fits_the_guest_os(
    qgactl, conn, domain_agent_not_started, os_id, fix, not_in_fix
):
    assert domain_agent_not_started.wait_console()
    with recorded_os(conn, domain_agent_not_started, os_id):
        code, checks, _ = doctor(qgactl, "doctor", domain_agent_not_started)
    assert code == 4
    check = failed_at(checks, "connected")
    assert fix in check["fix"] and not_in_fix not in check["fix"]
    assert f"--wait 60 {domain_agent_not_started}" in check["fix"]


@contextmanager
def holding(path):
    """A raw client that holds the agent socket (qemu-ga serves one client at a time)."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        # 0xFF: the agent drops any half-parsed input (and answers with an error line first)
        client.sendall(b'\xff{"execute":"guest-ping"}')
        received = b""
        while b'"return"' not in received:  # answered: QEMU accepted us, we hold the channel
            received += client.recv(4096)
        yield


def test_socket_held_by_another_client(qgactl, lab_domain):
    with holding(lab_domain.dedicated_socket):
        code, checks, _ = doctor(qgactl, "--transport", "socket", "doctor", lab_domain)
        assert code == 4
        check = failed_at(checks, "socket")
        assert f"(pid {os.getpid()})" in check["detail"] and "held by" in check["detail"]

        code, checks, _ = doctor(qgactl, "--socket", str(lab_domain.dedicated_socket), "doctor")
        assert code == 4
        failed_at(checks, "socket", ["socket", *AGENT_CHECKS])


def test_libvirt_channel_opened_directly_is_held_by_libvirt(qgactl, lab_domain):
    [lab] = [d for d in qgactl("-o", "json", "domains").json() if d["name"] == lab_domain]
    [channel] = [c for c in lab["channels"] if c["name"] == "org.qemu.guest_agent.0"]
    code, checks, _ = doctor(qgactl, "--socket", channel["path"], "doctor")
    assert code == 4
    assert "libvirtd" in failed_at(checks, "socket", ["socket", *AGENT_CHECKS])["detail"]


def test_socket_missing_or_stale(qgactl, tmp_path):
    code, checks, _ = doctor(qgactl, "--socket", str(tmp_path / "none.sock"), "doctor")
    assert code == 3
    failed_at(checks, "socket", ["socket", *AGENT_CHECKS])

    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(stale))  # closed without unlinking: a file nobody listens on
    code, checks, _ = doctor(qgactl, "--socket", str(stale), "doctor")
    assert code == 4
    assert "nothing listens" in failed_at(checks, "socket", ["socket", *AGENT_CHECKS])["detail"]


@pytest.mark.agent
def test_all_pass_on_a_host_agent_socket(qgactl, host_agent):
    code, checks, report = doctor(qgactl, "--socket", host_agent.socket_path, "doctor")
    assert code == 0, checks
    assert report["target"] == host_agent.socket_path
    assert list(checks) == ["socket", *AGENT_CHECKS]
    assert "qemu-ga (pid" in checks["socket"]["detail"]
    assert "guest-fsfreeze-freeze" in checks["disabled"]["detail"]  # the host agent's blocklist


def agent_command(domain_name, command):
    import libvirt
    import libvirt_qemu

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("qemu:///system")
    try:
        domain = conn.lookupByName(domain_name)
        return json.loads(libvirt_qemu.qemuAgentCommand(domain, json.dumps(command), 30, 0))
    finally:
        conn.close()


def test_frozen_guest(qgactl, lab_domain):
    assert agent_command(lab_domain, {"execute": "guest-fsfreeze-status"})["return"] == "thawed"
    try:
        assert agent_command(lab_domain, {"execute": "guest-fsfreeze-freeze"})["return"] >= 1
        # the freeze is the .0 agent's: ask through libvirt
        code, checks, _ = doctor(qgactl, "--transport", "libvirt", "doctor", lab_domain)
    finally:
        agent_command(lab_domain, {"execute": "guest-fsfreeze-thaw"})
    assert code == 6
    check = failed_at(checks, "frozen")
    assert f"qgactl fsfreeze {lab_domain} --thaw" in check["fix"]
    assert agent_command(lab_domain, {"execute": "guest-fsfreeze-status"})["return"] == "thawed"
