"""Open libvirt in a thread while the command line is imported.

A ``qgactl ping D`` process spends most of its life importing (Click, qgactl, libvirt), then
waits for libvirtd: opening a connection is a handshake of several round trips to the daemon,
during which Python releases the GIL. ``start`` (called by __main__ before anything else is
imported) guesses from argv which local host the command will open, and imports libvirt and
opens it in a daemon thread; discover.Libvirt takes that connection (``take``) rather than
opening its own. The guess only has to be cheap and safe: a wrong one opens a local
connection nobody uses, and a failure here is left for the command's own open to meet and
report. Remote URIs (qemu+ssh://) are not guessed: ssh might ask for a password.

Stdlib only (threading: Click imports it anyway).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

DEFAULT_URI = "qemu:///system"  # discover.DEFAULT_URI, without importing discover

# The root group's options that take a value (cli.py).
_VALUED = frozenset({"-c", "--connect", "--socket", "--transport", "-t", "--timeout", "-o",
                     "--output", "-j", "--jobs"})  # fmt: skip
_NO_HOST = frozenset({"completion"})  # commands that never open one
_HELP = frozenset({"-h", "--help", "--version"})

_threads: dict[str, threading.Thread] = {}
_connections: dict[str, Any] = {}
_lock = threading.Lock()


def start(argv: list[str]) -> None:
    """Start opening the host ``argv`` names (-c, else LIBVIRT_DEFAULT_URI, else the
    default) if it is local and the command line looks like one that will open it."""
    uri = _host_of(argv)
    if uri is None or _host_part(uri):
        return
    thread = threading.Thread(target=_open, args=(uri,), daemon=True)
    _threads[uri] = thread
    thread.start()


def take(uri: str) -> Any:
    """The connection opened for ``uri`` (to the first caller only), else None."""
    with _lock:
        thread = _threads.pop(uri, None)
    if thread is None:
        return None
    thread.join()
    return _connections.pop(uri, None)


def _open(uri: str) -> None:
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _connections[uri] = libvirt.open(uri)
    except Exception:  # the command opens it again and reports what went wrong
        pass


def _host_of(argv: list[str]) -> str | None:
    """The URI the command line will open; None when it opens none (--socket, --transport
    socket, help, completion), several (-c twice), or it is unclear."""
    connect: list[str] = []
    words = iter(argv)
    for word in words:
        name, has_value, value = word.partition("=")
        if word in _HELP or name == "--socket":
            return None
        if name in _VALUED:
            value = value if has_value else next(words, "")
            if name == "--transport" and value == "socket":
                return None
            if name in ("-c", "--connect"):
                connect.append(value)
        elif word.startswith("-c") and len(word) > 2:  # -cURI
            connect.append(word[2:])
        elif not word.startswith("-"):  # the command
            if word in _NO_HOST or len(connect) > 1 or _asks_help(words):
                return None
            return connect[0] if connect else os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI
    return None


def _host_part(uri: str) -> str:
    """driver[+transport]://[user@]host[:port]/path: the host, empty for a local URI."""
    _, _, rest = uri.partition("://")
    return rest.split("/", 1)[0]


def _asks_help(words: Iterator[str]) -> bool:
    """-h or --help among the command's own words (a guest command's, after --, don't count)."""
    for word in words:
        if word == "--":
            return False
        if word in ("-h", "--help"):
            return True
    return False
