"""The guest agent's channel in a libvirt domain's XML: add it or remove it, in the persistent
configuration and in the running domain.

The configuration is ``XMLDesc(INACTIVE|SECURE)`` -> xmlgen -> ``defineXML``; the running
domain gets ``attachDeviceFlags`` / ``detachDeviceFlags`` with VIR_DOMAIN_AFFECT_LIVE. Order of
work: every patch, and so every refusal, is computed before anything changes; then the
configuration is defined, then the live domain is changed. A live failure after a define is
reported as exactly that (configuration changed, live domain not: ``ChannelChange.half_done``),
never hidden or undone. The virtio-serial controller can't be hot-plugged (PROTOCOL.md,
"Patching"): a running domain without one gets the channel at its next boot, and the notes say
so.

``qgactl add-channel`` / ``remove-channel`` (commands/channel.py) and ``qgactl.add_channel`` /
``qgactl.remove_channel`` call ``edit``. Not here: editing XML (xmlgen.py), finding domains
(discover.py), mapping libvirt errors (transport.libvirt_error). No click, no printing.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from qgactl.errors import (
    AgentUnavailable,
    InvalidUsage,
    LibvirtFailure,
    QgactlError,
    XmlPatchRefused,
)
from qgactl.xmlgen import (
    Patch,
    add_agent_channel,
    channel_elements,
    list_channels,
    remove_agent_channel,
)

if TYPE_CHECKING:
    from qgactl.discover import Libvirt

# libvirt's enum values (libvirt-domain.h), so that the offline paths never import libvirt.
VIR_DOMAIN_AFFECT_LIVE = 1
VIR_DOMAIN_XML_SECURE = 1  # passwords (graphics, ...) included: a define must not drop them
VIR_DOMAIN_XML_INACTIVE = 2


def adding(
    name: str, path: str | None = None, address: tuple[int, int, int] | None = None
) -> ChannelEdit:
    """Add the channel ``name`` (a host socket ``path``, a virtio-serial ``address``)."""
    return ChannelEdit(
        "add", lambda xml: add_agent_channel(xml, name=name, path=path, address=address), name
    )


def removing(name: str) -> ChannelEdit:
    """Remove the channel ``name`` (the virtio-serial controller stays)."""
    return ChannelEdit("remove", lambda xml: remove_agent_channel(xml, name=name), name)


@dataclass(frozen=True)
class ChannelEdit:
    """Add or remove one agent channel: what the XML patch is, and what it is called."""

    verb: str  # "add" or "remove"
    patch: Callable[[str], Patch]
    channel: str

    @property
    def adding(self) -> bool:
        return self.verb == "add"

    @property
    def done(self) -> str:
        return "added" if self.adding else "removed"

    def apply(self, xml: str, where: str) -> Patch:
        """The patch; a refusal names WHERE (the domain or the file) in its one line."""
        try:
            return self.patch(xml)
        except XmlPatchRefused as exc:
            exc.message = f"{where}: {exc.message}"
            exc.args = (exc.message,)
            raise


@dataclass
class ChannelChange:
    """What one add or remove changed (or, in a dry run, would change)."""

    domain: str
    config: bool = False  # the persistent configuration was redefined
    live: bool = False  # the running domain was hot-(un)plugged
    added_controller: bool = False
    restart_needed: bool = False  # the configuration has the change, the running domain not
    notes: list[str] = field(default_factory=list)
    diff: str | None = None  # a dry run: the unified diff of the XML it would define
    # The configuration changed and the live change failed: the caller reports what was done,
    # then raises this.
    half_done: QgactlError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "changed": self.config or self.live,
            "config": self.config,
            "live": self.live,
            "added_controller": self.added_controller,
            "restart_needed": self.restart_needed,
            "notes": self.notes,
        }


def edit(
    libvirt: Libvirt,
    op: ChannelEdit,
    domain: str,
    *,
    config_opt: bool = False,
    live_opt: bool = False,
    dry_run: bool = False,
) -> ChannelChange:
    """Apply ``op`` to ``domain``: its configuration and/or its live domain (by default the
    configuration, plus the live domain when it runs); every refusal comes before any change."""
    target = _Target(libvirt, domain)
    do_config, do_live = target.scope(config_opt, live_opt)
    out = ChannelChange(target.name)

    # 1. Every patch and refusal first: nothing changes unless all of it can be done.
    config_before = config_patch = None
    if do_config:
        # SECURE: the define must keep graphics passwords and the like (virsh edit does the
        # same); a dry run prints its diff, so it reads the XML without them.
        flags = VIR_DOMAIN_XML_INACTIVE | (0 if dry_run else VIR_DOMAIN_XML_SECURE)
        config_before = target.xml(flags)
        config_patch = op.apply(config_before, target.name)
        out.notes += [f"config: {note}" for note in config_patch.notes]

    live_before = live_patch = None
    devices: list[str] = []  # channel elements to hot-plug or unplug
    if target.running:
        live_before = target.xml(0)
    if do_live:
        assert live_before is not None
        live_patch = op.apply(live_before, target.name)
        if not live_patch.changed:
            out.notes += [f"live: {note}" for note in live_patch.notes]
        elif not op.adding:
            devices = channel_elements(live_before, name=op.channel)
        elif not live_patch.added_controller:
            devices = channel_elements(live_patch.xml, name=op.channel)
        elif live_opt or not do_config:  # asked for, or nothing else to do (transient)
            raise XmlPatchRefused(
                f"{target.name}: the running domain has no virtio-serial controller, and one "
                "can't be hot-plugged",
                hint=f"add the channel to the configuration (qgactl add-channel {target.name} "
                "--config), then shut the domain down and start it",
                domain=target.name,
            )
        else:
            out.notes.append(
                "live: the running domain has no virtio-serial controller, and one can't be "
                "hot-plugged"
            )

    if dry_run:
        if config_patch is not None:
            assert config_before is not None
            diff = (config_before, config_patch, "config")
        else:
            assert live_before is not None and live_patch is not None
            diff = (live_before, live_patch, "live")
            if live_patch.changed:
                out.notes += [f"live: {note}" for note in live_patch.notes]
        before, patch, what = diff
        label = f"{target.name} ({what} XML)"
        out.diff = unified_diff(before, patch.xml, label, f"{label}, patched")
        if devices:
            action = "hot-plug" if op.adding else "hot-unplug"
            where = "into" if op.adding else "from"
            out.notes.append(
                f"live: would {action} channel {op.channel} {where} the running domain"
            )
        return out

    # 2. The configuration, then the live domain.
    if config_patch is not None and config_patch.changed:
        target.define(config_patch.xml)
        out.config = True
        out.added_controller = config_patch.added_controller
    for device in devices:
        try:
            target.hotplug(op, device)
        except QgactlError as error:
            if not out.config:
                raise
            out.half_done = _half_done(op, target.name, error)
            return out
        out.live = True
    if out.live:
        where = "into" if op.adding else "from"
        out.notes.append(
            f"live: hot-{'plugged' if op.adding else 'unplugged'} channel {op.channel} "
            f"{where} the running domain"
        )

    # 3. Does the running domain match the configuration now?
    _compare(op, target, out, live_before)
    return out


def _compare(op: ChannelEdit, target: _Target, out: ChannelChange, live_before: str | None) -> None:
    """Say when the change waits for the next boot, or when the next boot would undo it."""
    if not target.running:
        if out.config and op.adding:
            out.notes.append(f"{target.name} is shut off: the channel is used from its next start")
        return
    if not target.persistent:
        return
    assert live_before is not None
    live_after = op.adding if out.live else _has(live_before, op.channel)
    config_after = (
        op.adding
        if out.config
        else _has(target.xml(VIR_DOMAIN_XML_INACTIVE), op.channel)  # unchanged or not asked
    )
    if live_after == config_after:
        return
    if config_after == op.adding:
        out.restart_needed = True
        out.notes.append(
            f"{target.name}: the change takes effect at the next boot: shut the domain down and "
            "start it again (a reboot inside the guest keeps the running devices)"
        )
    else:
        state = "lacks" if op.adding else "still has"
        out.notes.append(
            f"{target.name}: only the running domain changed; its configuration {state} the "
            "channel, so the next boot undoes this (add --config to keep it)"
        )


def _half_done(op: ChannelEdit, domain: str, error: QgactlError) -> QgactlError:
    """The configuration changed, the live domain did not: say exactly that."""
    action = "hot-plug" if op.adding else "hot-unplug"
    why = error.message.removeprefix(f"{domain}: ")
    message = (
        f"{domain}: the configuration was changed ({op.done} channel {op.channel}), but the "
        f"live {action} failed: {why}"
    )
    hint = (
        "the configuration takes effect at the next boot (shut the domain down and start it); "
        f"or retry the live part: qgactl {op.verb}-channel {domain} --live"
    )
    data = {**error.data, "config": True, "live": False}
    if isinstance(error, AgentUnavailable):  # the domain stopped meanwhile
        return AgentUnavailable(message, hint=hint, **data)
    return LibvirtFailure(message, hint=hint, **data)


# --- libvirt ---------------------------------------------------------------------------------


class _Target:
    """One libvirt domain: its state, its XML, and the three changes qgactl makes to it."""

    def __init__(self, libvirt: Libvirt, domain: str) -> None:
        self._libvirt = libvirt
        self._dom = self._libvirt.lookup(domain)
        self.name = domain
        with self._errors():
            self.name = self._dom.name()
            self.running = bool(self._dom.isActive())
            self.persistent = bool(self._dom.isPersistent())

    def scope(self, config: bool, live: bool) -> tuple[bool, bool]:
        """(config?, live?): as asked, or by default the configuration, plus live if running."""
        if not config and not live:
            return self.persistent, self.running
        if config and not self.persistent:
            raise InvalidUsage(
                f"--config: domain {self.name} is transient (it has no persistent configuration)",
                hint=f"use --live, or make it persistent first (virsh dumpxml {self.name} > "
                f"{self.name}.xml; virsh define {self.name}.xml)",
            )
        if live and not self.running:
            raise AgentUnavailable(
                f"--live: domain {self.name} is not running",
                hint="leave --live out to change its configuration, used from its next start",
                domain=self.name,
            )
        return config, live

    def xml(self, flags: int) -> str:
        with self._errors():
            return str(self._dom.XMLDesc(flags))

    def define(self, xml: str) -> None:
        with self._errors():
            self._libvirt.conn.defineXML(xml)

    def hotplug(self, op: ChannelEdit, device: str) -> None:
        with self._errors():
            if op.adding:
                self._dom.attachDeviceFlags(device, VIR_DOMAIN_AFFECT_LIVE)
            else:
                self._dom.detachDeviceFlags(device, VIR_DOMAIN_AFFECT_LIVE)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        import libvirt

        from qgactl.transport import libvirt_error

        try:
            yield
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, domain=self.name) from None


def _has(xml: str, name: str) -> bool:
    return any(channel.name == name for channel in list_channels(xml))


def unified_diff(before: str, after: str, old_label: str, new_label: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), old_label, new_label
    )
    # A last line without a newline gets one, with diff's marker, so that patch(1) applies it.
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
