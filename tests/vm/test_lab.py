"""The lab works: real guests answer over raw sockets and through libvirt-python.

These tests use only sockets, QMP, libvirt-python and virsh (not qgactl), so a failure here is
a lab problem, not a qgactl one. The guest properties other tests rely on (lab/lab.py's
docstring: eth0, 2 vCPUs, a logged-in user, an account whose password can be set, a time zone,
agent shutdown and reboot) are checked on both flavours: "host" (qemu-ga 7.2) and "qga10".
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from typing import Any

import libvirt  # not importorskip: a missing libvirt-python must fail the run
import libvirt_qemu
import pytest

from lab import lab
from tests.vm.guestside import libvirt_raw, socket_raw

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


# ----------------------------------------------------------------------------- helpers


def raw_sync_and_call(path: str | os.PathLike[str], execute: str, timeout: float = 10.0) -> Any:
    """The protocol by hand: 0xFF + guest-sync-delimited, skip to our id, then one command."""
    sync_id = random.getrandbits(62)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(
            b"\xff"
            + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}).encode()
        )
        f = s.makefile("rb")
        while True:
            line = f.readline()
            assert line, "agent closed the connection"
            if b"\xff" in line and json.loads(line.rsplit(b"\xff", 1)[1]) == {"return": sync_id}:
                break
        s.sendall(json.dumps({"execute": execute}).encode())
        return json.loads(f.readline())


def agent(
    dom: Any, execute: str, arguments: dict[str, Any] | None = None, timeout: int = 10
) -> Any:
    cmd: dict[str, Any] = {"execute": execute}
    if arguments is not None:
        cmd["arguments"] = arguments
    return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(cmd), timeout, 0))["return"]


def channel_states(xml: str) -> dict[str, str | None]:
    root = ET.fromstring(xml)
    return {t.get("name", ""): t.get("state") for t in root.findall("./devices/channel/target")}


def exec_status_wait(call: Any, pid: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = call("guest-exec-status", {"pid": pid})
        if st["exited"]:
            return st  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"guest-exec pid {pid} did not exit in {timeout}s")


def guest_sh(call: Any, script: str) -> str:
    """Run a shell script in the guest through a raw agent call; its stdout (exit 0 asserted)."""
    arguments = {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True}
    st = exec_status_wait(call, call("guest-exec", arguments)["pid"])
    assert st["exitcode"] == 0, st
    return base64.b64decode(st.get("out-data", "")).decode()


def virsh(domain: lab.LabDomain, *args: str) -> str:
    """virsh COMMAND DOMAIN ARGS... on the domain's URI; its stdout (exit 0 asserted)."""
    command, *rest = args
    p = subprocess.run(
        ["virsh", "-q", "-c", domain.uri, command, domain.name, *rest],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, LC_ALL="C"),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return p.stdout


def virsh_fields(text: str) -> dict[str, str]:
    """virsh's "key : value" lines (guestinfo, guestvcpus) as a dict."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


# What each flavour's guests are: the shared fixtures, and the agent version they carry.
PLAIN_GUESTS = {"host": "plain_qemu_guest", "qga10": "plain_qemu_guest10"}
DOMAINS = {"host": "lab_domain", "qga10": "lab_domain10"}
AGENT_VERSIONS = {"host": "7.2.", "qga10": "10.0."}  # host: Debian 12's qemu-guest-agent


@pytest.fixture(params=sorted(lab.FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def plain_guest(flavour: str, request: pytest.FixtureRequest) -> lab.PlainQemuGuest:
    return request.getfixturevalue(PLAIN_GUESTS[flavour])  # type: ignore[no-any-return]


@pytest.fixture
def domain(flavour: str, request: pytest.FixtureRequest) -> lab.LabDomain:
    return request.getfixturevalue(DOMAINS[flavour])  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- plain QEMU


def test_plain_qemu_ping_and_osinfo(plain_qemu_guest: lab.PlainQemuGuest) -> None:
    assert raw_sync_and_call(plain_qemu_guest.socket_path, "guest-ping") == {"return": {}}
    info = raw_sync_and_call(plain_qemu_guest.socket_path, "guest-get-osinfo")["return"]
    assert info["id"] == "qgactllab"
    assert info["name"] == "qgactl lab"
    assert info["version-id"] == "1"
    assert info["kernel-release"] == lab.existing_paths().kernel_version
    host = lab.agent_call(plain_qemu_guest.socket_path, "guest-get-host-name")
    assert host == {"return": {"host-name": "qgactl-lab"}}


def test_plain_qemu_dedicated_port_and_data_disk(plain_qemu_guest: lab.PlainQemuGuest) -> None:
    assert plain_qemu_guest.dedicated_socket is not None
    assert raw_sync_and_call(plain_qemu_guest.dedicated_socket, "guest-ping") == {"return": {}}
    fs = lab.agent_call(plain_qemu_guest.socket_path, "guest-get-fsinfo")["return"]
    assert any(f["mountpoint"] == "/mnt/data" and f["type"] == "ext4" for f in fs), fs


def test_plain_qemu_slow_hwclock_makes_set_time_slow(
    plain_qemu_guest: lab.PlainQemuGuest,
) -> None:
    sock = plain_qemu_guest.socket_path

    def call(cmd: str, args: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        r = lab.agent_call(sock, cmd, args, timeout=timeout)
        assert "return" in r, r
        return r["return"]

    t0 = time.monotonic()
    call("guest-set-time")  # no time: hwclock -s (RTC -> system clock)
    fast = time.monotonic() - t0
    assert fast < 2, fast

    h = call("guest-file-open", {"path": "/run/qgactl-slow-hwclock", "mode": "w"})
    call("guest-file-write", {"handle": h, "buf-b64": base64.b64encode(b"3\n").decode()})
    call("guest-file-close", {"handle": h})
    try:
        with pytest.raises(TimeoutError):
            lab.agent_call(sock, "guest-set-time", timeout=1.0)
    finally:
        # the agent is busy ~2 more seconds; the next sync waits it out
        pid = call(
            "guest-exec", {"path": "/bin/rm", "arg": ["-f", "/run/qgactl-slow-hwclock"]}, timeout=15
        )["pid"]
        exec_status_wait(lambda c, a: call(c, a), pid)
    t0 = time.monotonic()
    call("guest-set-time")
    assert time.monotonic() - t0 < 2


def test_plain_qemu_hotplugged_port_gets_an_agent(plain_qemu_guest: lab.PlainQemuGuest) -> None:
    new_sock = plain_qemu_guest.workdir / "qga2.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(plain_qemu_guest.qmp_path))
        f = s.makefile("rb")
        assert "QMP" in json.loads(f.readline())

        def qmp(execute: str, **arguments: Any) -> Any:
            s.sendall(json.dumps({"execute": execute, "arguments": arguments}).encode())
            while True:
                reply = json.loads(f.readline())
                if "event" not in reply:
                    assert "return" in reply, reply
                    return reply["return"]

        qmp("qmp_capabilities")
        qmp(
            "chardev-add",
            id="qga2",
            backend={
                "type": "socket",
                "data": {
                    "addr": {"type": "unix", "data": {"path": str(new_sock)}},
                    "server": True,
                    "wait": False,
                },
            },
        )
        qmp(
            "device_add",
            driver="virtserialport",
            bus="virtio-serial0.0",
            nr=3,
            chardev="qga2",
            name="org.qemu.guest_agent.2",
            id="qga2port",
        )
        try:
            deadline = time.monotonic() + 30
            while not lab.agent_sync(new_sock, 1.0):
                assert time.monotonic() < deadline, "no agent on the hot-plugged port"
            assert raw_sync_and_call(new_sock, "guest-ping") == {"return": {}}
        finally:
            qmp("device_del", id="qga2port")
            time.sleep(1)
            s.sendall(
                json.dumps({"execute": "chardev-remove", "arguments": {"id": "qga2"}}).encode()
            )
    # the original port is unaffected
    assert lab.agent_sync(plain_qemu_guest.socket_path, 5)


def test_plain_qemu_guest_shutdown_halt_stops_the_guest_not_qemu(
    lab_paths: lab.Paths, tmp_path: Any
) -> None:
    # a guest of its own: this one is halted on purpose (poweroff: the libvirt test below)
    with lab.PlainQemuGuest(tmp_path) as g:
        assert g.proc is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(g.socket_path))
            # success-response false: no reply
            s.sendall(b'{"execute": "guest-shutdown", "arguments": {"mode": "halt"}}')
        deadline = time.monotonic() + 60
        while "System halted" not in g.console_log.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the guest kernel never halted"
            assert g.proc.poll() is None, "QEMU exited: a halt must not power off"
            time.sleep(0.2)
        console = g.console_log.read_text(errors="replace")
        assert "qgactl-lab: shutdown -h -H +0 hypervisor initiated shutdown -> halt" in console
        time.sleep(1)
        assert g.proc.poll() is None  # halted guest, QEMU still running
        assert not lab.agent_sync(g.socket_path, 2)


# ----------------------------------------------------------------------------- libvirt


def test_libvirt_agent_ping_and_connected(conn: Any, lab_domain: lab.LabDomain) -> None:
    dom = conn.lookupByName(lab_domain)
    assert json.loads(libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', 5, 0)) == {
        "return": {}
    }
    states = channel_states(dom.XMLDesc(0))
    assert states["org.qemu.guest_agent.0"] == "connected"
    assert states["org.qemu.guest_agent.1"] == "connected"
    assert agent(dom, "guest-get-host-name") == {"host-name": "qgactl-lab"}


def test_dedicated_socket_while_libvirt_holds_channel_0(
    conn: Any, lab_domain: lab.LabDomain
) -> None:
    dom = conn.lookupByName(lab_domain)
    assert lab_domain.dedicated_socket is not None
    root = ET.fromstring(dom.XMLDesc(0))
    paths = {
        c.get("name"): s.get("path")
        for c, s in (
            (ch.find("target"), ch.find("source")) for ch in root.findall("./devices/channel")
        )
        if c is not None and s is not None
    }
    assert paths["org.qemu.guest_agent.1"] == str(lab_domain.dedicated_socket)
    assert raw_sync_and_call(lab_domain.dedicated_socket, "guest-ping") == {"return": {}}
    assert agent(dom, "guest-ping") == {}  # libvirt's channel still works alongside
    info = raw_sync_and_call(lab_domain.dedicated_socket, "guest-get-osinfo")["return"]
    assert info["id"] == "qgactllab"


def test_libvirt_guest_exec_echo(conn: Any, lab_domain: lab.LabDomain) -> None:
    dom = conn.lookupByName(lab_domain)
    pid = agent(dom, "guest-exec", {"path": "/bin/echo", "arg": ["hi"], "capture-output": True})[
        "pid"
    ]
    st = exec_status_wait(lambda c, a: agent(dom, c, a), pid)
    assert st["exitcode"] == 0
    assert base64.b64decode(st["out-data"]) == b"hi\n"


def test_libvirt_fsfreeze_is_real(conn: Any, lab_domain: lab.LabDomain) -> None:
    """Freeze the GUEST's /mnt/data through libvirt; a guest writer blocks until thaw."""
    dom = conn.lookupByName(lab_domain)  # a lab guest, never the host
    assert lab_domain.startswith("qgactl-test-")
    assert agent(dom, "guest-fsfreeze-status") == "thawed"
    dedicated = str(lab_domain.dedicated_socket)

    def direct(cmd: str, args: dict[str, Any]) -> Any:
        r = lab.agent_call(dedicated, cmd, args)
        assert "return" in r, r
        return r["return"]

    try:
        assert agent(dom, "guest-fsfreeze-freeze", timeout=30) >= 1
        assert agent(dom, "guest-fsfreeze-status") == "frozen"
        # the .1 agent is another qemu-ga process, not in frozen state: run a writer through it
        pid = direct(
            "guest-exec",
            {"path": "/bin/sh", "arg": ["-c", "echo x > /mnt/data/frozen-write && sync"]},
        )["pid"]
        time.sleep(1.5)
        assert direct("guest-exec-status", {"pid": pid})["exited"] is False
    finally:
        thawed = agent(dom, "guest-fsfreeze-thaw", timeout=30)
    assert thawed >= 1
    assert agent(dom, "guest-fsfreeze-status") == "thawed"
    assert exec_status_wait(direct, pid)["exitcode"] == 0


def test_libvirt_noagent_domain_is_disconnected(
    conn: Any, domain_agent_not_started: lab.LabDomain
) -> None:
    assert domain_agent_not_started.wait_console(timeout=120), "guest did not finish booting"
    dom = conn.lookupByName(domain_agent_not_started)
    assert channel_states(dom.XMLDesc(0))["org.qemu.guest_agent.0"] == "disconnected"
    with pytest.raises(libvirt.libvirtError) as ei:
        libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', 2, 0)
    assert ei.value.get_error_code() == libvirt.VIR_ERR_AGENT_UNRESPONSIVE
    assert "not connected" in str(ei.value)


def test_libvirt_no_channel_and_off_domains(
    conn: Any, domain_no_channel: lab.LabDomain, domain_off: lab.LabDomain
) -> None:
    dom = conn.lookupByName(domain_no_channel)
    assert dom.isActive()
    assert channel_states(dom.XMLDesc(0)) == {}
    with pytest.raises(libvirt.libvirtError) as ei:
        libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', 2, 0)
    assert ei.value.get_error_code() == libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED
    assert "not configured" in str(ei.value)

    off = conn.lookupByName(domain_off)
    assert not off.isActive()
    with pytest.raises(libvirt.libvirtError) as ei:
        libvirt_qemu.qemuAgentCommand(off, '{"execute":"guest-ping"}', 2, 0)
    assert ei.value.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID


# ----------------------------------------------------------------------------- what guests report


def test_guestinfo_user_os_timezone(domain: lab.LabDomain) -> None:
    info = virsh_fields(virsh(domain, "guestinfo", "--user", "--os", "--timezone"))
    assert info["user.count"] == "1"
    assert info["user.0.name"] == "qgauser"
    assert int(info["user.0.login-time"]) > 0
    assert info["os.id"] == "qgactllab"
    assert info["os.variant-id"] == domain.flavour
    assert info["timezone.name"] == "IST"
    assert info["timezone.offset"] == "19800"


def test_domifaddr_agent_eth0_ipv4_and_link_local(domain: lab.LabDomain) -> None:
    output = virsh(domain, "domifaddr", "--source", "agent", "--full")
    rows = [line.split() for line in output.splitlines()]  # -q: no header
    eth0 = {(proto, address) for name, mac, proto, address in rows if name == "eth0"}
    assert all(mac == lab.GUEST_MAC for name, mac, _, _ in rows if name == "eth0")
    assert ("ipv4", "10.0.2.15/24") in eth0
    v6 = [address for proto, address in eth0 if proto == "ipv6"]
    assert len(v6) == 1 and v6[0].startswith("fe80::") and v6[0].endswith("/64"), eth0


def test_guestvcpus_two_online(domain: lab.LabDomain) -> None:
    vcpus = virsh_fields(virsh(domain, "guestvcpus"))
    assert vcpus == {"vcpus": "0-1", "online": "0-1", "offlinable": "1"}  # cpu0 can't go


def test_plain_guest_users_timezone_vcpus_interfaces(plain_guest: lab.PlainQemuGuest) -> None:
    call = socket_raw(plain_guest.socket_path)
    users = call("guest-get-users")
    assert [u["user"] for u in users] == ["qgauser"]
    assert time.time() - 3600 < users[0]["login-time"] <= time.time() + 1
    assert call("guest-get-timezone") == {"zone": "IST", "offset": 19800}
    vcpus = sorted(call("guest-get-vcpus"), key=lambda v: v["logical-id"])
    assert [(v["logical-id"], v["online"]) for v in vcpus] == [(0, True), (1, True)]
    eth0 = {i["name"]: i for i in call("guest-network-get-interfaces")}["eth0"]
    assert eth0["hardware-address"] == lab.GUEST_MAC
    addresses = {(a["ip-address-type"], a["prefix"]) for a in eth0["ip-addresses"]}
    assert addresses == {("ipv4", 24), ("ipv6", 64)}
    # the RTC stays UTC while the zone is IST: the guest's clock agrees with the host's
    assert abs(call("guest-get-time") / 1e9 - time.time()) < 60


def test_account_home_and_ssh_dir(plain_guest: lab.PlainQemuGuest) -> None:
    call = socket_raw(plain_guest.dedicated_socket)
    out = guest_sh(call, "grep ^qgauser: /etc/passwd; stat -c '%n %a %u %g' ~qgauser ~qgauser/.ssh")
    assert out.splitlines() == [
        "qgauser:x:1000:1000:qgactl lab user:/home/qgauser:/bin/sh",
        "/home/qgauser 755 1000 1000",
        "/home/qgauser/.ssh 700 1000 1000",
    ]


@pytest.mark.filterwarnings("ignore:'crypt' is deprecated:DeprecationWarning")
def test_set_user_password_changes_the_shadow_hash(conn: Any, domain: lab.LabDomain) -> None:
    import crypt  # stdlib until 3.13; only to check the guest's hash on the host

    dom = conn.lookupByName(domain)
    call = libvirt_raw(dom)

    def shadow() -> dict[str, str]:
        return {line.split(":")[0]: line for line in guest_sh(call, "cat /etc/shadow").split()}

    before = shadow()
    password = f"lab pw {random.getrandbits(32)}:x"  # a space and a colon: both are kept
    raw = {"username": "qgauser", "password": base64.b64encode(password.encode()).decode()}
    assert agent(dom, "guest-set-user-password", {**raw, "crypted": False}) == {}
    after = shadow()
    new_hash = after["qgauser"].split(":")[1]
    assert new_hash != before["qgauser"].split(":")[1]
    assert new_hash.startswith("$6$") and crypt.crypt(password, new_hash) == new_hash
    assert {k: v for k, v in after.items() if k != "qgauser"} == {
        k: v for k, v in before.items() if k != "qgauser"
    }

    given = crypt.crypt("another", crypt.mksalt(crypt.METHOD_SHA512))
    crypted = {"username": "qgauser", "password": base64.b64encode(given.encode()).decode()}
    assert agent(dom, "guest-set-user-password", {**crypted, "crypted": True}) == {}
    assert shadow()["qgauser"].split(":")[1] == given

    with pytest.raises(libvirt.libvirtError, match="failed to set user password"):
        agent(dom, "guest-set-user-password", {**raw, "username": "nosuch", "crypted": False})


def test_agent_reboot_comes_back_then_shutdown_powers_off(conn: Any, libvirt_ready: str) -> None:
    """A throwaway domain (the shared ones must stay up): one boot, one reboot."""
    domain = lab.start_domain(lab.test_domain_name("power"))
    try:
        call = libvirt_raw(conn.lookupByName(domain))
        boot_id = guest_sh(call, "cat /proc/sys/kernel/random/boot_id")
        virsh(domain, "reboot", "--mode", "agent")
        deadline = time.monotonic() + 2 * lab.BOOT_TIMEOUT
        while True:
            try:  # the first answers may still come from before the reboot
                if guest_sh(call, "cat /proc/sys/kernel/random/boot_id") != boot_id:
                    break
            except libvirt.libvirtError:
                pass  # rebooting
            assert time.monotonic() < deadline, "the agent did not come back after the reboot"
            time.sleep(0.5)
        assert [u["user"] for u in call("guest-get-users")] == ["qgauser"]  # /init ran again

        virsh(domain, "shutdown", "--mode", "agent")
        deadline = time.monotonic() + 60
        while lab.domain_state(domain) != "shut off":
            assert time.monotonic() < deadline, lab.domain_state(domain)
            time.sleep(0.3)
        console = domain.console_log.read_text(errors="replace")
        # qemu-ga always passes -h first: the wrapper must read past it (LAB.md)
        assert "shutdown -h -r +0 hypervisor initiated shutdown -> reboot" in console
        assert "shutdown -h -P +0 hypervisor initiated shutdown -> poweroff" in console
    finally:
        domain.destroy()


# ----------------------------------------------------------------------------- two agent versions


def test_agent_version_per_flavour(plain_guest: lab.PlainQemuGuest, flavour: str) -> None:
    info = socket_raw(plain_guest.socket_path)("guest-info")
    assert info["version"].startswith(AGENT_VERSIONS[flavour])


def test_qga10_load_routes_and_capture_modes(plain_qemu_guest10: lab.PlainQemuGuest) -> None:
    call = socket_raw(plain_qemu_guest10.socket_path)
    load = call("guest-get-load")
    assert set(load) == {"load1m", "load5m", "load15m"}
    # JSON numbers: an idle guest's 0.0 comes as 0
    assert all(type(v) in (int, float) and v >= 0 for v in load.values())
    ipv4 = [r for r in call("guest-network-get-route") if r["version"] == 4]
    routes = {(r["iface"], r["destination"], r["gateway"]) for r in ipv4}
    assert routes == {("eth0", "0.0.0.0", "10.0.2.2"), ("eth0", "10.0.2.0", "0.0.0.0")}
    arguments = {"path": "/bin/sh", "arg": ["-c", "echo out; echo err >&2"]}
    pid = call("guest-exec", {**arguments, "capture-output": "merged"})["pid"]
    merged = exec_status_wait(call, pid)
    assert base64.b64decode(merged["out-data"]) == b"out\nerr\n" and "err-data" not in merged


def test_host_flavour_lacks_the_10_0_commands(plain_qemu_guest: lab.PlainQemuGuest) -> None:
    sock = plain_qemu_guest.socket_path
    for command in ("guest-get-load", "guest-network-get-route"):
        assert lab.agent_call(sock, command)["error"]["class"] == "CommandNotFound"
    mode = {"path": "/bin/true", "capture-output": "merged"}  # 7.2: a bool only
    assert "error" in lab.agent_call(sock, "guest-exec", mode)


def test_qga10_through_libvirt(conn: Any, lab_domain10: lab.LabDomain) -> None:
    dom = conn.lookupByName(lab_domain10)
    assert agent(dom, "guest-info")["version"].startswith(AGENT_VERSIONS["qga10"])
    assert set(agent(dom, "guest-get-load")) == {"load1m", "load5m", "load15m"}


def test_debian12_is_a_real_debian_system(conn: Any, debian_domain: lab.LabDomain) -> None:
    """What `qgactl shell` and the Ansible tests rely on: systemd as PID 1, Debian's own
    qemu-guest-agent 7.2, bash, python3 and script(1), a user with a home."""
    raw = libvirt_raw(conn.lookupByName(debian_domain))
    assert raw("guest-info", None)["version"].startswith("7.2.")
    assert raw("guest-get-osinfo", None)["version-id"] == "12"
    script = (
        "cat /proc/1/comm; dpkg-query -W -f='${Version}\\n' qemu-guest-agent; "
        "bash -c 'echo $BASH_VERSION'; python3 -c 'import pty; print(\"pty\")'; "
        "script --version; getent passwd qgauser | cut -d: -f6,7; "
        "test -d /home/qgauser && echo home"
    )
    pid = raw("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})
    deadline = time.monotonic() + 30
    while not (status := raw("guest-exec-status", {"pid": pid["pid"]}))["exited"]:
        assert time.monotonic() < deadline, "guest-exec did not finish"
        time.sleep(0.1)
    lines = base64.b64decode(status.get("out-data", "")).decode().splitlines()
    assert status["exitcode"] == 0, lines
    assert lines[0] == "systemd"
    assert lines[1].startswith("1:7.2+dfsg")
    assert lines[2].startswith("5.2")
    assert lines[3] == "pty"
    assert lines[4].startswith("script from util-linux")
    assert lines[5:] == ["/home/qgauser:/bin/bash", "home"]
