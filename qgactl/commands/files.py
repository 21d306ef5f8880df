"""cat and cp: files between the host and a guest (Guest's read_file, write_file, copy_in...)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Callable

import click

from qgactl import completion
from qgactl.app import App, pass_app
from qgactl.errors import InvalidUsage
from qgactl.signals import DeferredSignals, Interrupted

if TYPE_CHECKING:
    from qgactl.api import Guest
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
    guest = app.guest(domain)
    with _copying(app, None) as progress:
        guest.read_file(path, into=app.terminal.guest_bytes("stdout"), progress=progress)


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
    guest = app.guest((src_domain if src_domain is not None else dst_domain) or None)
    if src_domain is not None:
        _from_guest(app, guest, src_path, dst_path, preserve, recursive)
    else:
        _to_guest(app, guest, src_path, dst_path, preserve, recursive)


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
    app: App, guest: Guest, guest_path: str, host_path: str, preserve: bool, recursive: bool
) -> None:
    if recursive:
        with _copying(app, None):
            guest.copy_out(guest_path, host_path, recursive=True, keep_mode=preserve)
    elif host_path == "-":
        with _copying(app, None) as progress:
            guest.read_file(guest_path, into=app.terminal.guest_bytes("stdout"), progress=progress)
    else:
        with _copying(app, posixpath.basename(guest_path)) as progress:
            guest.copy_out(guest_path, host_path, keep_mode=preserve, progress=progress)


def _to_guest(
    app: App, guest: Guest, host_path: str, guest_path: str, preserve: bool, recursive: bool
) -> None:
    if recursive:
        with _copying(app, None):
            guest.copy_in(host_path, guest_path, recursive=True, keep_mode=preserve)
    elif host_path == "-":
        with _copying(app, None) as progress:
            guest.write_file(
                guest_path, sys.stdin.buffer, name="stdin", keep_mode=preserve, progress=progress
            )
    else:
        with _copying(app, os.path.basename(host_path)) as progress:
            guest.copy_in(
                host_path, guest_path, recursive=False, keep_mode=preserve, progress=progress
            )
