"""add-channel / remove-channel end to end on real libvirtd guests (vm tier).

Two domains of the lab guest, each booted once (boots compete for two shared cores):

* ``ch-noctl``: no virtio-serial controller and no channel. Running, it can't get the channel
  live (QEMU can't hot-plug the controller): add-channel defines it, says "next boot", and after
  the restart it asks for, ``qgactl ping`` answers.
* ``ch-hotplug``: a controller but no channel, running. add-channel hot-plugs the channel and
  ping answers without a restart (the guest starts qemu-ga on a new virtio port when the
  kernel's uevent announces it); remove-channel unplugs it and ping says there is no channel
  (exit 4); a second plug after the unplug works too, and so does a dedicated channel reached
  directly.

Domains are named lab.test_domain_name(...) and destroyed + undefined in a finally. The time
from the hot-plug to the first agent answer is printed ("timing: ..."), never asserted.
"""

from __future__ import annotations

import time
from typing import Any

from lab import lab
from qgactl.xmlgen import list_channels

AGENT0 = "org.qemu.guest_agent.0"
AGENT1 = "org.qemu.guest_agent.1"
CONTROLLER = "<controller type='virtio-serial' index='0'/>"


def inactive_xml(conn: Any, name: str) -> str:
    import libvirt

    return str(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def agent_channels(xml: str) -> list[str]:
    return [c.name for c in list_channels(xml) if c.is_agent]


def summary(run: Any) -> dict[str, Any]:
    assert run.code == 0, (run.code, run.stdout, run.stderr)
    data: dict[str, Any] = run.json()
    return data


def timing(line: str) -> None:
    print(f"timing: {line}")  # shown with -s or -rP; never asserted (DESIGN.md: bench/)


def start_without_agent(name: str, xml: str) -> lab.LabDomain:
    """Define and start; no agent to wait for (the domain has no channel yet)."""
    lab.define_and_start(name, xml, wait_agent=False)
    return lab.LabDomain(name)


def test_no_controller_takes_effect_after_the_restart_it_asks_for(qgactl, conn):
    name = lab.test_domain_name("ch-noctl")
    xml = lab.domain_xml(name, agent_channel=False)
    assert CONTROLLER in xml
    xml = xml.replace(CONTROLLER, "")
    try:
        start_without_agent(name, xml)
        assert "virtio-serial" not in lab.live_xml(name)

        run = qgactl("-o", "json", "add-channel", name)
        data = summary(run)
        assert (data["config"], data["live"]) == (True, False)
        assert data["added_controller"] is True and data["restart_needed"] is True
        assert "no virtio-serial controller, and one can't be hot-plugged" in run.stderr
        assert f"{name}: the change takes effect at the next boot" in run.stderr
        stored = inactive_xml(conn, name)
        assert agent_channels(stored) == [AGENT0]
        assert "<controller type='virtio-serial' index='0'" in stored
        assert agent_channels(lab.live_xml(name)) == []

        # Idempotent: the configuration has it, the running domain still waits for the restart.
        again = qgactl("-o", "json", "add-channel", name)
        data = summary(again)
        assert data["changed"] is False and data["restart_needed"] is True
        assert "already present" in again.stderr

        # The restart qgactl asked for: shut down and start (destroy: the guest has no ACPI
        # daemon to wait for, and it is a throwaway).
        dom = conn.lookupByName(name)
        dom.destroy()
        started = time.monotonic()
        dom.create()
        ping = qgactl("-o", "json", "ping", "--wait", "90", name, timeout=120)
        assert ping.code == 0, ping.stderr
        timing(f"start to first agent answer: {time.monotonic() - started:.2f} s")
        assert lab.channel_state(name) == "connected"
    finally:
        lab.destroy_and_undefine(name)


def test_hot_plug_remove_and_plug_again_without_a_restart(qgactl, conn):
    name = lab.test_domain_name("ch-hotplug")
    try:
        dom = start_without_agent(name, lab.domain_xml(name, agent_channel=False))
        assert dom.wait_console(), "the guest did not finish booting"
        before = qgactl("ping", name)
        assert before.code == 4, before.stderr

        # (2) hot-plug: config + live, and the agent answers without a restart.
        started = time.monotonic()
        run = qgactl("-o", "json", "add-channel", name)
        data = summary(run)
        assert (data["config"], data["live"], data["restart_needed"]) == (True, True, False)
        assert data["added_controller"] is False
        assert f"live: hot-plugged channel {AGENT0} into the running domain" in run.stderr
        ping = qgactl("-o", "json", "ping", "--wait", "60", name, timeout=90)
        assert ping.code == 0, ping.stderr
        timing(f"hot-plug to first agent answer: {time.monotonic() - started:.2f} s")
        timing(f"add-channel (define + hot-plug, whole process): {run.seconds:.3f} s")
        assert [r["ok"] for r in ping.json()] == [True]
        assert agent_channels(inactive_xml(conn, name)) == [AGENT0]
        assert lab.channel_state(name) == "connected"

        again = qgactl("-o", "json", "add-channel", name)
        assert summary(again)["changed"] is False
        assert f"config: agent channel {AGENT0} already present" in again.stderr
        assert f"live: agent channel {AGENT0} already present" in again.stderr

        # (3) remove: live and config; the controller stays; ping: no channel (exit 4).
        run = qgactl("-o", "json", "remove-channel", name)
        data = summary(run)
        assert (data["config"], data["live"]) == (True, True)
        assert f"live: hot-unplugged channel {AGENT0} from the running domain" in run.stderr
        assert agent_channels(lab.live_xml(name)) == []
        stored = inactive_xml(conn, name)
        assert agent_channels(stored) == [] and "type='virtio-serial'" in stored
        gone = qgactl("ping", name)
        assert gone.code == 4, gone.stderr
        assert "not configured" in gone.stderr or "no guest agent channel" in gone.stderr

        # Plug again after the unplug, live only: the configuration is told to stay as it is.
        run = qgactl("-o", "json", "add-channel", name, "--live")
        data = summary(run)
        assert (data["config"], data["live"]) == (False, True)
        assert "only the running domain changed" in run.stderr
        assert qgactl("ping", "--wait", "60", name, timeout=90).code == 0
        assert agent_channels(inactive_xml(conn, name)) == []
        run = qgactl("-o", "json", "remove-channel", name, "--live")
        assert summary(run)["live"] is True

        # A dedicated channel, hot-plugged, reached straight through its socket.
        socket_path = str(dom.dir / "chan" / "qga1.sock")
        run = qgactl("-o", "json", "add-channel", name, "--name", AGENT1, "--path", socket_path)
        assert summary(run)["live"] is True
        ping = qgactl("--transport", "socket", "ping", "--wait", "60", name, timeout=90)
        assert ping.code == 0, ping.stderr
        # with no .0 channel at all, auto falls back from libvirt to the dedicated socket
        ping = qgactl("-o", "json", "ping", name)
        assert ping.code == 0, ping.stderr
        assert ping.json()[0]["transport"] == "socket"
        [channel] = [c for c in list_channels(lab.live_xml(name)) if c.name == AGENT1]
        assert channel.path == socket_path
        run = qgactl("-o", "json", "remove-channel", name, "--name", AGENT1)
        assert (summary(run)["config"], summary(run)["live"]) == (True, True)
        assert agent_channels(lab.live_xml(name)) == []
    finally:
        lab.destroy_and_undefine(name)
