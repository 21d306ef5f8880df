"""The lab works: real guests answer over raw sockets and through libvirt-python.

These tests use only sockets, QMP and libvirt-python (not qgactl), so a failure here is a lab
problem, not a qgactl one.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import time
import xml.etree.ElementTree as ET
from typing import Any

import libvirt  # not importorskip: a missing libvirt-python must fail the run
import libvirt_qemu
import pytest

from lab import lab

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


def test_plain_qemu_guest_shutdown_powers_off(lab_paths: lab.Paths, tmp_path: Any) -> None:
    # a guest of its own: this one is powered off on purpose
    with lab.PlainQemuGuest(tmp_path) as g:
        assert g.proc is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(g.socket_path))
            s.sendall(b'{"execute": "guest-shutdown"}')  # success-response false: no reply
            assert g.proc.wait(30) == 0
        assert "qgactl-lab: shutdown -h -P +0" in g.console_log.read_text(errors="replace")


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
