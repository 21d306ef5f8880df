"""Wait until a guest's agent answers, and optionally until it reports a usable IP address.

Right after `virsh start` the agent is "not connected" for seconds to a minute: scripts write
retry loops around it. ``until_ready`` is that loop, done once:

- a libvirt domain is looked at first through libvirt (its state and the channel state libvirt
  keeps in the live XML): one without any agent channel fails at once (it would never answer);
  one that is shut off or whose channel is disconnected is waited for without asking the agent;
- libvirt's domain events (lifecycle, and agent lifecycle: connected/disconnected) wake the
  waiters when the host sends them (``Events``: needs libvirt's default event loop, registered
  before a connection is opened); a slow poll stays as a safety net. Without events, and for
  --socket targets, the poll backs off from POLL_FIRST to POLL_CAP;
- then the agent is pinged (libvirt's "connected" only says the guest opened its port), and
  for an address, guest-network-get-interfaces is asked until it lists one that is neither
  loopback nor link-local.

No click, no printing.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from qgactl.errors import AgentTimeout, AgentUnavailable, NotFound

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.discover import DomainInfo
    from qgactl.models import NetworkInterface

WANTS = ("agent", "ip", "ipv4", "ipv6")
POLL_FIRST = 0.1
POLL_CAP = 2.0  # a guest that boots for minutes costs one look every 2 s
EVENT_POLL_CAP = 10.0  # with events, polling is only a safety net


class Ready(NamedTuple):
    addresses: tuple[str, ...]  # empty when only the agent was waited for
    seconds: float  # from the start of the wait

    def to_json(self) -> dict[str, Any]:
        return {"addresses": list(self.addresses), "seconds": round(self.seconds, 3)}


class Events:
    """libvirt domain events as a generation counter: a waiter notes ``generation``, looks,
    and sleeps in ``wait`` until it changes (any event on any domain) or its pause ends."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.generation = 0
        self.hosts = 0  # connections that deliver events

    def notify(self, *_: Any) -> None:
        with self._changed:
            self.generation += 1
            self._changed.notify_all()

    def wait(self, seen: int, seconds: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.generation != seen, seconds)

    def listen(self, conn: Any) -> bool:
        """Have ``conn`` deliver lifecycle and agent-lifecycle events (False if the host or
        its driver can't). The event loop must have been started before ``conn`` opened."""
        import libvirt

        try:
            for event in (
                libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
            ):
                conn.domainEventRegisterAny(None, event, self.notify, None)
        except (libvirt.libvirtError, AttributeError):  # old libvirt or a driver without events
            return False
        self.hosts += 1
        return True


_loop_started = False


def start_event_loop() -> None:
    """libvirt's default event loop in a daemon thread; before any connection is opened
    (libvirt binds a connection's event delivery to the loop registered when it opens)."""
    global _loop_started
    if _loop_started:
        return
    import libvirt

    libvirt.virEventRegisterDefaultImpl()

    def run() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=run, name="libvirt-events", daemon=True).start()
    _loop_started = True


def usable_addresses(interfaces: tuple[NetworkInterface, ...], want: str) -> tuple[str, ...]:
    """The addresses ``want`` (ip, ipv4, ipv6) accepts: not loopback, not link-local."""
    found: list[str] = []
    for interface in interfaces:
        for address in interface.addresses:
            text = address.address
            if text is None or (want != "ip" and address.type != want):
                continue
            try:
                parsed = ipaddress.ip_address(text.split("%")[0])
            except ValueError:
                continue  # guest data: not an address
            if not (parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified):
                found.append(text)
    return tuple(found)


def until_ready(
    open_agent: Callable[[float], Agent],
    want: str,
    deadline: float,
    *,
    label: str,
    describe: Callable[[], DomainInfo] | None = None,
    events: Events | None = None,
    socket: bool = False,
) -> Ready:
    """Wait until the agent answers (``want`` "agent") or reports an address of that kind.

    ``open_agent(seconds left)`` opens the agent; ``describe`` (libvirt domains) reads the domain's
    state and channels without the agent; ``events`` wakes the wait early; ``socket``: a
    missing socket may yet appear. ``deadline`` is a time.monotonic(). AgentTimeout at the
    deadline, with the last reason the agent did not answer.
    """
    started = time.monotonic()
    pause = POLL_FIRST
    why = "no answer yet"
    while True:
        seen = events.generation if events else 0
        blocked = _not_askable(describe()) if describe else None  # no channel: raised
        if blocked:
            why = blocked
        else:
            try:
                addresses = _ask(open_agent(max(1.0, deadline - time.monotonic())), want)
                if addresses is not None:
                    return Ready(addresses, time.monotonic() - started)
                why = f"the agent reports no {_kind(want)} address yet"
            except (AgentUnavailable, AgentTimeout) as exc:
                why = exc.message
            except NotFound as exc:
                if not socket:
                    raise
                why = exc.message
        left = deadline - time.monotonic()
        if left <= 0:
            raise AgentTimeout(
                f"{label}: gave up waiting after {time.monotonic() - started:.0f} s ({why})",
                hint="--timeout waits longer; qgactl doctor DOMAIN says what is missing",
                domain=label,
            )
        if events is not None and events.hosts and blocked:
            events.wait(seen, min(EVENT_POLL_CAP, left))  # woken by the next event
        else:
            time.sleep(min(pause, left))
            pause = min(pause * 2, POLL_CAP)


def _ask(agent: Agent, want: str) -> tuple[str, ...] | None:
    """Ping; then the addresses ``want`` asks for (None: none yet)."""
    try:
        agent.ping()
        if want == "agent":
            return ()
        return usable_addresses(agent.interfaces(), want) or None
    finally:
        agent.close()


def _not_askable(info: DomainInfo) -> str | None:
    """Why the agent can't answer yet, from libvirt alone (None: ask it). A domain with no
    agent channel never will: AgentUnavailable."""
    if not info.channels:
        raise AgentUnavailable(
            f"{info.name}: no guest agent channel is configured",
            hint=f"add one: qgactl add-channel {info.name}",
            domain=info.name,
        )
    if not info.running:
        return f"the domain is {info.state}"
    if all(channel.state == "disconnected" for channel in info.channels):
        return "the agent is not connected"
    return None


def _kind(want: str) -> str:
    return {"ip": "IP", "ipv4": "IPv4", "ipv6": "IPv6"}.get(want, want)
