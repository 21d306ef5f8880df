"""cat and cp: files between the host and a guest (the engine is qgactl/transfer.py)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

from qgactl import completion, transfer
from qgactl.app import App, pass_app
from qgactl.errors import InvalidUsage
from qgactl.signals import DeferredSignals, Interrupted

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.guestfile import Progress


@click.command()
@click.argument(
    "words",
    nargs=-1,
    required=True,
    metavar="[DOMAIN] PATH",
    shell_complete=completion.complete_exec_words,
)
@pass_app
def cat(app: App, words: tuple[str, ...]) -> None:
    """Print a guest file's bytes to stdout (on a terminal, control characters escaped)."""
    domain, (path,) = app.split_domain(words, "PATH")
    agent = app.open_agent(domain)
    with _copying(app, None) as progress:
        transfer.download_to(agent, path, app.terminal.guest_bytes("stdout"), progress)


@click.command()
@click.option("-p", "--preserve", is_flag=True, help="Keep the source's mode.")
@click.option("-r", "--recursive", is_flag=True, help="Copy a directory (tar in the guest).")
@click.argument("source", metavar="SRC", shell_complete=completion.complete_copy_paths)
@click.argument("destination", metavar="DST", shell_complete=completion.complete_copy_paths)
@pass_app
def cp(app: App, preserve: bool, recursive: bool, source: str, destination: str) -> None:
    """Copy a file (or with -r a directory) between the host and a guest.

    \b
      qgactl cp vm1:/var/log/syslog .         guest -> host (into a directory: same name)
      qgactl cp ./app.conf vm1:/etc/app/      host -> guest
      qgactl cp -r vm1:/etc/nginx ./nginx     a directory, through tar in the guest
      qgactl cp vm1:/etc/hostname -           to stdout ("-" as SRC: from stdin)
      qgactl --socket /tmp/qga.sock cp :/etc/hostname .

    The copy is all or nothing: it goes to a temporary name beside DST and is renamed into
    place at the end; on any failure (Ctrl-C included) the temporary is removed. A file that
    DST replaces in the guest keeps its mode and owner unless -p.
    """
    (src_domain, src_path), (dst_domain, dst_path) = _side(app, source), _side(app, destination)
    if (src_domain is None) == (dst_domain is None):
        raise InvalidUsage(
            "one of SRC and DST is DOMAIN:PATH (:PATH with --socket), the other a host path",
            hint="e.g. qgactl cp vm1:/etc/hostname .",
        )
    guest = src_domain if src_domain is not None else dst_domain
    agent = app.open_agent(guest or None)
    if src_domain is not None:
        _from_guest(app, agent, src_path, dst_path, preserve, recursive)
    else:
        _to_guest(app, agent, src_path, dst_path, preserve, recursive)


@contextlib.contextmanager
def _copying(app: App, name: str | None) -> Iterator[Progress]:
    """A copy's progress callback: the bar (on a terminal, when ``name`` is given), and the
    one place a signal stops the copy, between two chunks. Signals wait until then, so no
    agent call is cut short: a guest file's open or close is never lost half way, and the
    cleanup of a failed copy runs whole."""
    bar_or_none = app.terminal.progress(name) if name else contextlib.nullcontext()
    with DeferredSignals() as signals, bar_or_none as bar:
        yield _Progress(signals, bar)
    if signals.received:  # it came during the last step
        raise Interrupted(signals.received)


class _Progress:
    """guestfile.Progress: a deferred signal raised between chunks, and the bar if any."""

    def __init__(self, signals: DeferredSignals, bar: Callable[[int, int | None], None] | None):
        self._signals = signals
        self._bar = bar
        self.sized = bar is not None

    def __call__(self, count: int, total: int | None, /) -> None:
        if self._signals.received:
            raise Interrupted(self._signals.received)
        if self._bar is not None:
            self._bar(count, total)


def _side(app: App, word: str) -> tuple[str | None, str]:
    """DOMAIN:PATH -> (DOMAIN, PATH); a host path -> (None, path). As with scp, a colon after
    a slash is part of a host path (./a:b)."""
    head, colon, tail = word.partition(":")
    if not colon or "/" in head:
        return None, word
    if app.socket_path and head:
        raise InvalidUsage(f"{word}: with --socket the guest side is :PATH, without a domain")
    if not tail:
        raise InvalidUsage(f"{word}: no path after the colon")
    return head, tail


def _from_guest(
    app: App, agent: Agent, guest_path: str, host_path: str, preserve: bool, recursive: bool
) -> None:
    if recursive:
        with _copying(app, None):
            transfer.download_tree(agent, guest_path, host_path, keep_mode=preserve)
    elif host_path == "-":
        with _copying(app, None) as progress:
            transfer.download_to(agent, guest_path, app.terminal.guest_bytes("stdout"), progress)
    else:
        with _copying(app, posixpath.basename(guest_path)) as progress:
            transfer.download(agent, guest_path, host_path, keep_mode=preserve, progress=progress)


def _to_guest(
    app: App, agent: Agent, host_path: str, guest_path: str, preserve: bool, recursive: bool
) -> None:
    if recursive:
        if not Path(host_path).is_dir():
            raise transfer.HostFileError(f"{host_path}: not a directory")
        with _copying(app, None):
            transfer.upload_tree(agent, host_path, guest_path, keep_mode=preserve)
        return
    if host_path == "-":
        with _copying(app, None) as progress:
            transfer.upload(
                agent, sys.stdin.buffer, guest_path, name="stdin", keep_mode=preserve,
                progress=progress,
            )  # fmt: skip
        return
    try:
        source = open(host_path, "rb")  # noqa: SIM115 (closed below, after the upload)
    except OSError as exc:
        raise transfer.HostFileError(f"{host_path}: {exc.strerror}") from None
    with source, _copying(app, os.path.basename(host_path)) as progress:
        info = os.fstat(source.fileno())
        if not Path(host_path).is_file():
            raise transfer.HostFileError(
                f"{host_path}: not a regular file", hint="-r copies a directory"
            )
        mode = transfer.new_file_mode(info.st_mode, preserve)
        transfer.upload(
            agent,
            source,
            guest_path,
            name=os.path.basename(host_path),
            mode=mode,
            keep_mode=preserve,
            progress=progress,
            size=info.st_size,
        )
