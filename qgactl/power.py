"""Shutdown, reboot and suspend through the guest agent, and waiting for what follows.

- ``shutdown(agent, mode, ...)``: guest-shutdown; with ``wait``, until libvirt says the domain
  is shut off, or (``--socket``) until the agent's channel closes (QEMU exited); for a reboot,
  until the agent went away and answers again.
- ``suspend(agent, mode, ...)``: guest-suspend-*, refused when the domain can't wake up from
  that mode, with how to bring the guest back.

guest-shutdown and guest-suspend-* answer nothing when they work (success-response false in
qga/qapi-schema.json; the transports treat silence and the agent going away as success), and
`virsh shutdown --mode agent` returns ~1 s before the domain is actually off (PROTOCOL.md):
waiting means watching the domain, not the reply. No click, no printing: progress goes through
a callback.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable

from qgactl.agent import Agent
from qgactl.errors import AgentTimeout, AgentUnavailable, InvalidUsage, NotFound, QgactlError
from qgactl.models import PowerResult

SHUTDOWN_MODES = ("powerdown", "halt", "reboot")  # guest-shutdown's @mode
SUSPEND_MODES = ("ram", "disk", "hybrid")  # guest-suspend-ram, -disk, -hybrid
POLL_SECONDS = 0.2
VIR_DOMAIN_SHUTOFF = 5  # virDomainState

Progress = Callable[[str], None]


def _quiet(_text: str) -> None:
    pass


def shutdown(
    agent: Agent,
    mode: str,
    *,
    name: str,
    domain: Any | None = None,
    socket_path: str | None = None,
    wait: float | None = None,
    progress: Progress = _quiet,
) -> PowerResult:
    """Ask the guest to power down, halt or reboot; with ``wait`` (seconds), wait for it.

    ``domain`` is the libvirt.virDomain (None with --socket, where ``socket_path`` is watched).
    """
    if wait is not None and mode == "halt":
        raise InvalidUsage(
            "--wait can't tell when a guest has halted: its CPUs stop, the domain keeps running",
            hint="use --mode powerdown to wait for the domain to shut off",
        )
    agent.require("guest-shutdown")
    # the agent ports open now: one of them closing is the reboot under way
    watched = _open_ports(domain, name) if wait is not None and domain is not None else set()
    started = time.monotonic()
    agent.shutdown(mode)
    if wait is None:
        return PowerResult(name, mode, False, None, None)
    deadline = started + wait
    if mode == "reboot":
        outcome = _answers_again(agent, name, domain, watched, deadline, progress)
    elif domain is not None:
        outcome = _shut_off(domain, name, deadline, progress)
    else:
        assert socket_path is not None
        agent.close()  # ours must not be the connection that keeps the channel open
        outcome = _channel_closed(socket_path, deadline, progress)
    return PowerResult(name, mode, True, outcome, round(time.monotonic() - started, 1))


def suspend(agent: Agent, mode: str, *, name: str, domain: Any | None = None) -> PowerResult:
    """Suspend to RAM, disk or both; refused up front when the domain can't wake from it."""
    wake = wake_advice(mode, name, None if domain is None else _libvirt(domain, domain.XMLDesc, 0))
    agent.require(f"guest-suspend-{mode}")
    agent.suspend(mode)
    return PowerResult(name, f"suspend-{mode}", False, None, None, wake)


def wake_advice(mode: str, name: str, domain_xml: str | None) -> str:
    """How the guest comes back from ``mode``; InvalidUsage when it can't.

    ram and hybrid leave the guest asleep in memory: something must wake it. libvirt's
    ``<pm><suspend-to-mem enabled='no'/>`` hides S3 from the guest (QEMU's disable_s3), and
    `virsh dompmwakeup` refuses such a domain; unset, QEMU's pc and q35 machines support it.
    disk writes memory to the guest's swap and powers off (even without S4, which
    ``<suspend-to-disk>`` sets: Linux then shuts down), so starting the domain resumes it.
    (libvirt docs, formatdomain "Power Management"; qga/qapi-schema.json guest-suspend-ram.)
    """
    if mode == "disk":
        again = f"virsh start {name}" if domain_xml else "start QEMU again with the same disks"
        return f"the guest powers off once its memory is on disk: {again} resumes it"
    if domain_xml is None:
        return "wake it from QEMU's monitor: system_wakeup"
    from qgactl.xmlgen import suspend_states

    if suspend_states(domain_xml)["suspend-to-mem"] is False:
        raise InvalidUsage(
            f"{name} can't wake up from suspend-to-{mode}: its XML disables S3 "
            "(<pm><suspend-to-mem enabled='no'/>)",
            hint=f"use --mode disk, or enable S3 (virsh edit {name}: <suspend-to-mem "
            "enabled='yes'/>) and restart the domain",
        )
    return f"virsh dompmwakeup {name}"


# -- waiting ----------------------------------------------------------------------------------


def _shut_off(domain: Any, name: str, deadline: float, progress: Progress) -> str:
    """Poll libvirt until the domain is shut off (or gone: a transient domain is undefined)."""
    from qgactl.discover import STATES

    while True:
        try:
            state = _libvirt(domain, domain.state)[0]
        except NotFound:
            return "gone"
        if state == VIR_DOMAIN_SHUTOFF:
            return "shut off"
        left = deadline - time.monotonic()
        if left <= 0:
            raise AgentTimeout(
                f"{name} is still {STATES.get(state, 'running')} after --wait",
                hint=f"the guest may still be shutting down or may ignore the request; "
                f"virsh destroy {name} forces it off",
                domain=name,
            )
        progress(f"waiting for {name} to shut off ({left:.0f} s left)")
        time.sleep(min(POLL_SECONDS, left))


def _channel_closed(path: str, deadline: float, progress: Progress) -> str:
    """Wait until QEMU closes the chardev (it exits when the guest powers off)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(path)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AgentTimeout(
                        f"{path} is still open after --wait: QEMU has not exited",
                        hint="the guest may still be shutting down; QEMU runs on after a "
                        "guest power-off with -no-shutdown",
                        socket=path,
                    )
                progress(f"waiting for the guest to power off ({left:.0f} s left)")
                sock.settimeout(min(0.5, left))
                try:
                    if not sock.recv(65536):  # data (a stale reply) is not the end: read on
                        return "channel closed"
                except socket.timeout:
                    continue
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
            return "channel closed"
        except socket.timeout:
            raise AgentTimeout(f"{path}: no connection within --wait", socket=path) from None


def _answers_again(
    agent: Agent,
    name: str,
    domain: Any | None,
    watched: set[str],
    deadline: float,
    progress: Progress,
) -> str:
    """A reboot: the agent goes away (a failed ping, or one of the ``watched`` agent ports
    closing in libvirt's live XML), then answers a ping again."""
    away = False
    while True:
        if domain is not None:
            away = bool(watched - _open_ports(domain, name)) or away
        try:
            left = max(0.1, deadline - time.monotonic())
            agent.call("guest-ping", timeout=min(agent.timeout, left))
        except (AgentUnavailable, AgentTimeout):
            away = True
        else:
            if away:
                return "answers again"
        left = deadline - time.monotonic()
        if left <= 0:
            raise AgentTimeout(
                f"{name}: the agent did not answer again after the reboot within --wait"
                if away
                else f"{name}: the agent still answers: the guest has not rebooted within --wait",
                hint="a guest may take minutes to reboot: give --wait more seconds",
                domain=name,
            )
        progress(f"waiting for {name} to reboot ({left:.0f} s left)")
        time.sleep(min(POLL_SECONDS, left))


def _open_ports(domain: Any, name: str) -> set[str]:
    """The agent channels whose guest end is open (libvirt's live XML: state='connected'); a
    domain that shut off instead of rebooting (``<on_reboot>destroy``) is an error."""
    from qgactl.xmlgen import list_channels

    if _libvirt(domain, domain.state)[0] == VIR_DOMAIN_SHUTOFF:
        raise AgentUnavailable(
            f"{name} is shut off",
            hint=f"its <on_reboot> may be destroy; virsh start {name}",
            domain=name,
        )
    xml = _libvirt(domain, domain.XMLDesc, 0)
    return {c.name for c in list_channels(xml) if c.is_agent and c.state == "connected"}


def _libvirt(domain: Any, method: Callable[..., Any], *args: Any) -> Any:
    """A libvirt call with its error mapped (transport.libvirt_error)."""
    import libvirt

    from qgactl.transport import libvirt_error

    try:
        return method(*args)
    except libvirt.libvirtError as exc:
        error: QgactlError = libvirt_error(exc, domain=domain.name())
        raise error from None
