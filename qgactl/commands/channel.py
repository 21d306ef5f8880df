"""`qgactl add-channel` / `qgactl remove-channel`: the agent's channel in a domain's XML.

Three ways in:

    DOMAIN          the persistent configuration (``XMLDesc(INACTIVE|SECURE)`` -> xmlgen ->
                    ``defineXML``) and, when the domain runs, the live domain
                    (``attachDeviceFlags`` / ``detachDeviceFlags`` with VIR_DOMAIN_AFFECT_LIVE).
                    ``--config`` / ``--live`` choose, as with virsh; the default is the
                    configuration, plus the live domain when it runs.
    --file PATH|-   offline: the patched XML (or with --dry-run its diff) on stdout; no libvirt.
    --qemu-args     the bare-QEMU equivalent on stdout; no libvirt, no XML.

Order of work: every patch, and so every refusal, is computed before anything changes; then the
configuration is defined, then the live domain is changed. A live failure after a define is
reported as exactly that (configuration changed, live domain not), never hidden or undone.
The virtio-serial controller can't be hot-plugged (PROTOCOL.md, "Patching"): a running domain
without one gets the channel at its next boot, and qgactl says so.

Not here: editing XML (xmlgen.py), finding domains (discover.py), mapping libvirt errors
(transport.libvirt_error).
"""

from __future__ import annotations

import contextlib
import difflib
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import click

from qgactl import completion
from qgactl.app import App, pass_app
from qgactl.errors import (
    AgentUnavailable,
    ExitCode,
    InvalidUsage,
    LibvirtFailure,
    QgactlError,
    XmlPatchRefused,
)
from qgactl.wire import DEFAULT_CHANNEL
from qgactl.xmlgen import (
    Patch,
    add_agent_channel,
    channel_elements,
    list_channels,
    qemu_args,
    remove_agent_channel,
)

# libvirt's enum values (libvirt-domain.h), so that the offline paths never import libvirt.
VIR_DOMAIN_AFFECT_LIVE = 1
VIR_DOMAIN_XML_SECURE = 1  # passwords (graphics, ...) included: a define must not drop them
VIR_DOMAIN_XML_INACTIVE = 2

DEFAULT_QEMU_SOCKET = "/tmp/qga.sock"


# --- shared options ------------------------------------------------------------------------


def _common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """DOMAIN, --name, --config, --live, --dry-run and --file, shared by both commands."""
    options = [
        click.argument(
            "domain",
            required=False,
            metavar="[DOMAIN]",
            shell_complete=completion.complete_all_domains,
        ),
        click.option(
            "--name",
            default=DEFAULT_CHANNEL,
            show_default=True,
            metavar="NAME",
            help="The channel's port name. libvirt itself talks to org.qemu.guest_agent.0; "
            "another name is a dedicated channel that qgactl reaches directly.",
        ),
        click.option(
            "--config",
            is_flag=True,
            help="Change the persistent configuration (used from the next boot).",
        ),
        click.option("--live", is_flag=True, help="Change the running domain."),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Print the unified diff of the domain XML; change nothing.",
        ),
        click.option(
            "--file",
            "file",
            type=click.Path(exists=True, dir_okay=False, allow_dash=True),
            metavar="PATH|-",
            help="Offline: patch a domain XML file (- for stdin) and print it; no libvirt.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command("add-channel")
@_common_options
@click.option(
    "--path",
    metavar="SOCKET",
    help="The host socket (required with another --name; in a directory the QEMU user can "
    "write). Default: libvirt chooses one.",
)
@click.option(
    "--address",
    metavar="CONTROLLER.BUS.PORT",
    callback=lambda _ctx, _param, value: _parse_address(value),
    help="Pin the channel's virtio-serial port, e.g. 0.0.3. Default: libvirt assigns one.",
)
@click.option(
    "--qemu-args",
    "want_qemu_args",
    is_flag=True,
    help="Print the equivalent bare-QEMU options (default socket /tmp/qga.sock); needs no domain.",
)
@pass_app
def add_channel(
    app: App,
    domain: str | None,
    name: str,
    config: bool,
    live: bool,
    dry_run: bool,
    file: str | None,
    path: str | None,
    address: tuple[int, int, int] | None,
    want_qemu_args: bool,
) -> int:
    """Add the guest agent's channel (and, if needed, a virtio-serial controller).

    The persistent configuration is patched in place (every other element stays as it is) and
    defined; a running domain that has a virtio-serial controller also gets the channel
    hot-plugged, so its agent can connect without a restart. Otherwise the channel takes effect
    at the next boot, and qgactl says so. Already present: nothing to do, exit 0.

    \b
      qgactl add-channel vm1
      qgactl add-channel vm1 --dry-run            the diff, nothing changed
      qgactl add-channel vm1 --name org.qemu.guest_agent.1 --path /run/qga/vm1.sock
      qgactl add-channel --file vm1.xml > vm1-agent.xml
      qgactl add-channel --qemu-args --path /tmp/vm1-qga.sock
    """
    if want_qemu_args:
        _refuse_with(
            "--qemu-args",
            DOMAIN=domain,
            **{
                "--file": file,
                "--dry-run": dry_run,
                "--config": config,
                "--live": live,
                "--address": address,
            },
        )
        words = qemu_args(name=name, path=path or DEFAULT_QEMU_SOCKET)
        lines = [f"{option} {shlex.quote(value)}" for option, value in zip(words[::2], words[1::2])]
        app.terminal.document("\n".join(lines) + "\n")
        app.terminal.note(f"in the guest: qemu-ga -m virtio-serial -p /dev/virtio-ports/{name}")
        return ExitCode.OK
    if name != DEFAULT_CHANNEL and path is None:
        raise InvalidUsage(
            f"--name {name} needs --path SOCKET",
            hint="libvirt holds only org.qemu.guest_agent.0 itself; a dedicated channel needs a "
            "socket path in a directory the QEMU user can write",
        )
    op = _Op("add", lambda xml: add_agent_channel(xml, name=name, path=path, address=address), name)
    return _run(app, op, domain, config=config, live=live, dry_run=dry_run, file=file)


@click.command("remove-channel")
@_common_options
@pass_app
def remove_channel(
    app: App,
    domain: str | None,
    name: str,
    config: bool,
    live: bool,
    dry_run: bool,
    file: str | None,
) -> int:
    """Remove the guest agent's channel; the virtio-serial controller stays.

    From the persistent configuration and, when the domain runs, from the live domain (a
    hot-unplug: libvirt drops its agent connection). Absent: nothing to do, exit 0.

    \b
      qgactl remove-channel vm1
      qgactl remove-channel vm1 --name org.qemu.guest_agent.1 --config
      qgactl remove-channel --file vm1.xml --dry-run
    """
    op = _Op("remove", lambda xml: remove_agent_channel(xml, name=name), name)
    return _run(app, op, domain, config=config, live=live, dry_run=dry_run, file=file)


# --- the work --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Op:
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
class _Outcome:
    """What one run changed; ``-o json`` prints it."""

    domain: str
    config: bool = False  # the persistent configuration was redefined
    live: bool = False  # the running domain was hot-(un)plugged
    added_controller: bool = False
    restart_needed: bool = False  # the configuration has the change, the running domain not
    notes: list[str] = field(default_factory=list)

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


def _run(
    app: App,
    op: _Op,
    domain: str | None,
    *,
    config: bool,
    live: bool,
    dry_run: bool,
    file: str | None,
) -> int:
    command = f"{op.verb}-channel"
    if app.socket_path:
        raise InvalidUsage(
            f"{command} edits a libvirt domain: --socket does not apply",
            hint=f"qgactl {command} DOMAIN, or --file PATH for an XML file",
        )
    if file is not None:
        _refuse_with("--file", DOMAIN=domain, **{"--config": config, "--live": live})
        return _offline(app, op, file, dry_run)
    if not domain:
        raise InvalidUsage(
            "missing DOMAIN", hint="name a domain, or use --file PATH for an XML file"
        )
    return _on_domain(app, op, domain, config_opt=config, live_opt=live, dry_run=dry_run)


def _offline(app: App, op: _Op, file: str, dry_run: bool) -> int:
    """--file: the patched XML (or its diff) on stdout, the notes on stderr."""
    label = "<stdin>" if file == "-" else file
    xml = _read_text(file, label)
    patch = op.apply(xml, label)
    for note in patch.notes:
        app.terminal.note(note)
    if dry_run:
        app.terminal.document(_diff(xml, patch.xml, label, f"{label} (patched)"))
    else:
        app.terminal.document(patch.xml)
    return ExitCode.OK


def _on_domain(
    app: App, op: _Op, domain: str, *, config_opt: bool, live_opt: bool, dry_run: bool
) -> int:
    target = _Target(app, domain)
    do_config, do_live = target.scope(config_opt, live_opt)
    out = _Outcome(target.name)

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
        return _dry_run(app, op, target, diff, out, devices)

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
            _report(app, op, out, summary=False)
            raise _half_done(op, target.name, error) from None
        out.live = True
    if out.live:
        where = "into" if op.adding else "from"
        out.notes.append(
            f"live: hot-{'plugged' if op.adding else 'unplugged'} channel {op.channel} "
            f"{where} the running domain"
        )

    # 3. Does the running domain match the configuration now?
    _compare(op, target, out, live_before)
    _report(app, op, out)
    return ExitCode.OK


def _compare(op: _Op, target: _Target, out: _Outcome, live_before: str | None) -> None:
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


def _report(app: App, op: _Op, out: _Outcome, *, summary: bool = True) -> None:
    """Notes on stderr; the JSON summary on stdout, or one human line on stderr."""
    for note in out.notes:
        app.terminal.note(note)
    if app.terminal.output in ("json", "raw"):
        app.terminal.result(out.to_json(), lambda: None)
    elif summary:
        parts = [p for p, done in (("configuration", out.config), ("live", out.live)) if done]
        if parts:
            app.terminal.note(f"{out.domain}: {op.done} channel {op.channel} ({', '.join(parts)})")
        else:
            app.terminal.note(f"{out.domain}: nothing to change")


def _dry_run(
    app: App,
    op: _Op,
    target: _Target,
    diff: tuple[str, Patch, str],
    out: _Outcome,
    devices: list[str],
) -> int:
    """The diff of the configuration (or, with --live alone, of the live XML), and the notes."""
    before, patch, what = diff
    label = f"{target.name} ({what} XML)"
    app.terminal.document(_diff(before, patch.xml, label, f"{label}, patched"))
    for note in out.notes:
        app.terminal.note(note)
    if devices:
        action = "hot-plug" if op.adding else "hot-unplug"
        where = "into" if op.adding else "from"
        app.terminal.note(f"live: would {action} channel {op.channel} {where} the running domain")
    app.terminal.note("dry run: nothing changed")
    return ExitCode.OK


def _half_done(op: _Op, domain: str, error: QgactlError) -> QgactlError:
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


# --- libvirt -----------------------------------------------------------------------------------


class _Target:
    """One libvirt domain: its state, its XML, and the three changes qgactl makes to it."""

    def __init__(self, app: App, domain: str) -> None:
        self._libvirt = app.libvirt
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

    def hotplug(self, op: _Op, device: str) -> None:
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


# --- small helpers ---------------------------------------------------------------------------


def _parse_address(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = text.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise click.BadParameter(
            f"{text!r} is not CONTROLLER.BUS.PORT (e.g. 0.0.3)", param_hint="'--address'"
        )
    controller, bus, port = (int(part) for part in parts)
    return controller, bus, port


def _has(xml: str, name: str) -> bool:
    return any(channel.name == name for channel in list_channels(xml))


def _refuse_with(option: str, **others: object) -> None:
    """OPTION works alone: refuse any of OTHERS that is set."""
    given = [other for other, value in others.items() if value]
    if given:
        raise InvalidUsage(
            f"{option} can't be combined with {', '.join(given)}",
            hint=f"see qgactl {click.get_current_context().info_name} --help",
        )


def _read_text(file: str, label: str) -> str:
    try:
        if file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(file, "rb") as stream:
                data = stream.read()
    except OSError as exc:
        raise InvalidUsage(f"can't read {label}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XmlPatchRefused(
            f"{label} is not UTF-8 text (byte {exc.start})",
            hint="libvirt writes UTF-8; convert it first (iconv -t UTF-8)",
        ) from None


def _diff(before: str, after: str, old_label: str, new_label: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), old_label, new_label
    )
    # A last line without a newline gets one, with diff's marker, so that patch(1) applies it.
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
