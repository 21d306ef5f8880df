"""discover: the transport rule (DomainInfo.transport), remote URIs, UUID detection."""

from __future__ import annotations

import pytest

from qgactl.discover import DomainInfo, Libvirt, _is_uuid
from qgactl.errors import InvalidUsage
from qgactl.xmlgen import Channel

LIBVIRT_HELD = Channel(
    "org.qemu.guest_agent.0", "unix", "bind", "/run/l/org.qemu.guest_agent.0", "connected"
)
DEDICATED = Channel("org.qemu.guest_agent.1", "unix", "bind", "/run/qga1.sock", "connected")


def domain(*channels: Channel) -> DomainInfo:
    return DomainInfo("vm1", "uuid", 1, "running", channels)


def with_state(channel: Channel, state: str | None) -> Channel:
    return Channel(channel.name, channel.type, channel.mode, channel.path, state)


def test_libvirt_channel_only():
    assert domain(LIBVIRT_HELD).transport() == ("libvirt", None)


def test_connected_libvirt_channel_wins_over_a_dedicated_one():
    assert domain(LIBVIRT_HELD, DEDICATED).transport() == ("libvirt", None)


def test_dedicated_channel_when_libvirts_is_disconnected():
    info = domain(with_state(LIBVIRT_HELD, "disconnected"), DEDICATED)
    assert info.transport() == ("socket", "/run/qga1.sock")


def test_dedicated_channel_alone():
    assert domain(DEDICATED).transport() == ("socket", "/run/qga1.sock")


def test_dedicated_channel_known_disconnected_falls_back_to_libvirt():
    assert domain(with_state(DEDICATED, "disconnected")).transport() == ("libvirt", None)


def test_remote_host_never_opens_sockets():
    assert domain(DEDICATED).transport(remote=True) == ("libvirt", None)
    with pytest.raises(InvalidUsage, match="remote"):
        domain(DEDICATED).transport("socket", remote=True)


def test_forced_socket_prefers_the_dedicated_channel():
    assert domain(LIBVIRT_HELD, DEDICATED).transport("socket") == ("socket", "/run/qga1.sock")
    assert domain(LIBVIRT_HELD).transport("socket") == ("socket", LIBVIRT_HELD.path)


def test_forced_socket_without_a_path_is_a_usage_error():
    pty = Channel("org.qemu.guest_agent.0", "pty", None, None, None)
    with pytest.raises(InvalidUsage, match="no agent socket"):
        domain(pty).transport("socket")


def test_forced_libvirt():
    assert domain(DEDICATED).transport("libvirt") == ("libvirt", None)


def test_agent_state():
    assert domain().agent_state == "none"
    assert domain(with_state(LIBVIRT_HELD, None)).agent_state == "configured"
    assert domain(LIBVIRT_HELD).agent_state == "connected"


@pytest.mark.parametrize(
    ("uri", "remote"),
    [
        ("qemu:///system", False),
        ("qemu:///session", False),
        ("test:///default", False),
        ("qemu+ssh://root@host/system", True),
        ("qemu+tcp://host:16509/system", True),
        ("qemu+ssh://host/system?keyfile=/k", True),
    ],
)
def test_remote_uris(uri, remote):
    assert Libvirt(uri).is_remote is remote


@pytest.mark.parametrize(
    ("text", "is_uuid"),
    [
        ("6695eb01-f6a4-8304-79aa-97f2502e193f", True),
        ("6695EB01F6A4830479AA97F2502E193F", True),
        ("vm1", False),
        ("6695eb01-f6a4-8304-79aa-97f2502e193", False),
        ("g695eb01-f6a4-8304-79aa-97f2502e193f", False),
    ],
)
def test_uuid_detection(text, is_uuid):
    assert _is_uuid(text) is is_uuid
