"""The rule that picks a transport for a domain (discover.DomainInfo.transport)."""

from __future__ import annotations

import pytest

from qgactl.discover import DomainInfo
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
