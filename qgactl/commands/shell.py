"""shell: an interactive terminal in the guest (the session engine is qgactl/shell.py).

This module owns the host terminal: raw mode (restored on every way out), the signals
(SIGWINCH becomes a resize, SIGTERM/SIGHUP/SIGINT end the session with 128+N) and the escape
key, Ctrl-] as in `virsh console`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import termios
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from qgactl import completion
from qgactl.app import App, pass_app
from qgactl.errors import InvalidUsage
from qgactl.signals import Interrupted

if TYPE_CHECKING:
    from qgactl.shell import Session

ESCAPE = b"\x1d"  # Ctrl-]
ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
DISCONNECTED = 0  # _relay's answer for Ctrl-] (a signal's number otherwise)


@click.command()
@click.option("--user", default="root", show_default=True, help="The guest user to log in as.")
@click.option("--cwd", metavar="DIR", help="Start in DIR (default: the user's home).")
@click.argument("domain", shell_complete=completion.complete_running_domains)
@click.argument("command", nargs=-1, metavar="[-- CMD [ARGS]...]")
@pass_app
def shell(app: App, user: str, cwd: str | None, domain: str, command: tuple[str, ...]) -> int:
    """An interactive terminal in the guest: the user's login shell, or CMD, on a real pty.

    Works where the guest's network does not: it goes through a virtio-serial port plugged
    into the running domain for this session (and unplugged after it) and a small python3 pty
    relay started by the guest agent. The guest needs python3; the domain a virtio-serial
    controller (every domain with an agent channel has one). Ctrl-] disconnects. qgactl exits
    with the shell's status; 255 if the guest side goes away.

    \b
      qgactl shell vm1
      qgactl shell vm1 --user alice --cwd /srv
      qgactl shell vm1 -- top
    """
    from qgactl import shell as engine

    if not os.isatty(0):
        raise InvalidUsage(
            "qgactl shell needs a terminal on stdin",
            hint=f"to run a command without one: qgactl exec {domain} -- CMD",
        )
    if app.socket_path:
        raise InvalidUsage(
            "qgactl shell works through libvirt, not --socket",
            hint="it plugs a port of its own into the domain: name the domain",
        )
    host = app.libvirt
    dom = host.lookup(domain)
    rows, cols = _size()
    env = {k: v for k, v in os.environ.items() if k == "LANG" or k.startswith("LC_")}
    env["TERM"] = os.environ.get("TERM", "vt100")
    request = engine.Request(user, cwd, list(command), env, rows, cols)
    session = engine.Session(dom, app.guest(domain).agent, host.uri)
    try:
        with _raw_terminal(), _signal_pipe() as signals:
            session.start(request, _write_stdout)
            ended_by = _relay(session, signals)
    finally:
        session.close()
    if ended_by == DISCONNECTED:
        app.terminal.note("qgactl: disconnected (Ctrl-])")
        return 0
    if ended_by is not None:
        raise Interrupted(ended_by)
    if session.outcome.error is not None:
        raise session.outcome.error
    assert session.outcome.status is not None
    return session.outcome.status


def _relay(session: Session, signals: int) -> int | None:
    """Keys to the session until it ends: None when it ended by itself, else the ending
    signal, or DISCONNECTED for Ctrl-]."""
    done = session.outcome.done
    while not done.is_set():
        ready = select.select([0, signals], [], [], 0.1)[0]
        if signals in ready:
            for signum in os.read(signals, 64):
                if signum == signal.SIGWINCH:
                    session.resize(*_size())
                elif signum in ENDING:
                    return signum
        if 0 in ready and not done.is_set():
            try:
                keys = os.read(0, 4096)
            except OSError:
                keys = b""
            if not keys:  # the terminal went away
                return signal.SIGHUP
            before, escape, _ = keys.partition(ESCAPE)
            session.send(before)
            if escape:
                return DISCONNECTED
    return None


def _size() -> tuple[int, int]:
    size = os.get_terminal_size(0)
    return size.lines, size.columns


def _write_stdout(data: bytes) -> None:
    try:
        while data:
            data = data[os.write(1, data) :]
    except OSError:
        pass  # stdout closed: the session goes on until the guest or a signal ends it


@contextlib.contextmanager
def _raw_terminal() -> Iterator[None]:
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _signal_pipe() -> Iterator[int]:
    """A pipe that receives the number of each SIGWINCH, SIGTERM, SIGHUP and SIGINT (the
    handlers do nothing else: select wakes up on it). Ignored signals (nohup) stay ignored."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = {}
    for signum in (signal.SIGWINCH, *ENDING):
        if signal.getsignal(signum) != signal.SIG_IGN:
            previous[signum] = signal.signal(signum, lambda *_: None)
    old_fd = signal.set_wakeup_fd(write_end)
    try:
        yield read_end
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(read_end)
        os.close(write_end)
