"""`qgactl add-channel` / `qgactl remove-channel`: the agent's channel in a domain's XML.

Three ways in:

    DOMAIN          the persistent configuration (``XMLDesc(INACTIVE|SECURE)`` -> xmlgen ->
                    ``defineXML``) and, when the domain runs, the live domain
                    (``attachDeviceFlags`` / ``detachDeviceFlags`` with VIR_DOMAIN_AFFECT_LIVE).
                    ``--config`` / ``--live`` choose, as with virsh; the default is the
                    configuration, plus the live domain when it runs.
    --file PATH|-   offline: the patched XML (or with --dry-run its diff) on stdout; no libvirt.
    --qemu-args     the bare-QEMU equivalent on stdout; no libvirt, no XML.

The work on a domain (every refusal before any change, then the configuration, then the live
domain) is the Python API's ``add_channel`` / ``remove_channel`` (qgactl/agentchannel.py
under them); this module parses the options and prints the diff, the notes and the summary.
--file and --qemu-args need no libvirt and stay here.
"""

from __future__ import annotations

import functools
import shlex
import sys
from typing import Any, Callable

import click

from qgactl import agentchannel, api, completion
from qgactl.agentchannel import ChannelChange, ChannelEdit
from qgactl.app import App, pass_app
from qgactl.errors import ExitCode, InvalidUsage, XmlPatchRefused
from qgactl.wire import DEFAULT_CHANNEL
from qgactl.xmlgen import qemu_args

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
    op = agentchannel.adding(name, path, address)
    edit = functools.partial(api.add_channel, name=name, path=path, address=address)
    return _run(app, op, edit, domain, config=config, live=live, dry_run=dry_run, file=file)


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
    op = agentchannel.removing(name)
    edit = functools.partial(api.remove_channel, name=name)
    return _run(app, op, edit, domain, config=config, live=live, dry_run=dry_run, file=file)


# --- the work --------------------------------------------------------------------------------


def _run(
    app: App,
    op: ChannelEdit,
    edit: Callable[..., ChannelChange],
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
    out = edit(
        domain,
        uri=app.connect_uri,
        config=config,
        live=live,
        dry_run=dry_run,
        raise_half_done=False,  # said after what was done
    )
    if out.diff is not None:
        app.terminal.document(out.diff)
        for note in out.notes:
            app.terminal.note(note)
        app.terminal.note("dry run: nothing changed")
    elif out.half_done is not None:
        _report(app, op, out, summary=False)
        raise out.half_done
    else:
        _report(app, op, out)
    return ExitCode.OK


def _offline(app: App, op: ChannelEdit, file: str, dry_run: bool) -> int:
    """--file: the patched XML (or its diff) on stdout, the notes on stderr."""
    label = "<stdin>" if file == "-" else file
    xml = _read_text(file, label)
    patch = op.apply(xml, label)
    for note in patch.notes:
        app.terminal.note(note)
    if dry_run:
        app.terminal.document(
            agentchannel.unified_diff(xml, patch.xml, label, f"{label} (patched)")
        )
    else:
        app.terminal.document(patch.xml)
    return ExitCode.OK


def _report(app: App, op: ChannelEdit, out: ChannelChange, *, summary: bool = True) -> None:
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
