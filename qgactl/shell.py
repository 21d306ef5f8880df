"""The host side of `qgactl shell`: a session over a virtio-serial port of its own.

Transport (why): every domain with an agent channel already has the virtio-serial controller a
second port needs, so a session hot-plugs a port of its own (``org.qgactl.shell.<random>``: a
second shell gets its own) as a unix channel whose socket libvirt puts in its private channel
directory, and reaches it through libvirt's virDomainOpenChannel stream: the same path over
qemu+ssh as locally, no socket or TCP port anyone else can reach, and keystroke echo in about
a millisecond (the agent-only way, polling files with guest-file-*, costs a poll interval). The
guest side is shell_relay.py, started through guest-exec with python3: it opens a pty, starts
the login shell on it, and relays between the pty and the port, with a small framing so a
window size and the exit status travel in-band (shell_relay.py documents it).

How a session ends, and what cleans up
    - the shell exits: the relay sends its status (``x``), kills what is left of the session;
      qgactl closes the stream and unplugs the port.
    - qgactl goes (Ctrl-], a signal, an error): it closes the stream; the guest's port polls
      POLLHUP and the relay hangs the session up. qgactl unplugs the port.
    - qgactl is killed (SIGKILL): libvirtd closes the stream, the relay sees POLLHUP as above,
      and a guard process (``python -m qgactl.shell``, its own session, started before the
      port is plugged) sees its stdin pipe close and unplugs the port.
    - the guest side goes (the domain stops, the agent restarts and takes the relay with it):
      the stream ends, or guest-exec-status (asked every second) says the relay is gone:
      ``lost``, exit 255 as ssh does.

Not here: the terminal (raw mode, signals, Ctrl-]): qgactl/commands/shell.py.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from qgactl.errors import AgentCommandError, QgactlError
from qgactl.portlink import PluggedPort, guest_source
from qgactl.shell_relay import HEADER, MAX_PAYLOAD, STATUS, WINSIZE, split_frames

PORT_PREFIX = "org.qgactl.shell."
LIVENESS_PERIOD = 1.0  # how often guest-exec-status is asked whether the relay still runs
EXIT_GRACE = 1.0  # the relay exited: its exit frame may still be on the way
START_DEADLINE = 45.0  # the relay's first frame: python3's start and its port wait, under TCG
RELAY_SOURCE = Path(__file__).with_name("shell_relay.py")


class SessionLost(QgactlError):
    """The guest side of the session went away: exit 255, as ssh does."""

    exit_code = 255  # type: ignore[assignment]


class SessionRefused(QgactlError):
    """The guest could not start the session (no python3, no such user or directory)."""

    exit_code = 125  # type: ignore[assignment]


@dataclass
class Request:
    user: str
    cwd: str | None
    argv: list[str]  # empty: the user's login shell
    env: dict[str, str]  # TERM, LANG, LC_* from the host
    rows: int
    cols: int


@dataclass
class Outcome:
    status: int | None = None  # the shell's exit status
    error: QgactlError | None = None  # the session could not start, or was lost
    done: threading.Event = field(default_factory=threading.Event)


class Session:
    """One shell session on a running domain; ``start``, then ``send``/``resize`` until
    ``outcome.done``, and always ``close`` (idempotent, also after a failed start)."""

    def __init__(self, domain: Any, agent: Any, uri: str) -> None:
        self._domain = domain  # libvirt.virDomain
        self._agent = agent  # qgactl.agent.Agent (for guest-exec)
        self._port = PluggedPort(domain, uri, PORT_PREFIX)
        self.port = self._port.name
        self.outcome = Outcome()
        self._stream: Any = None
        self._pid: int | None = None
        self._send_lock = threading.Lock()
        self._answered = threading.Event()  # the relay's first frame arrived

    def start(self, request: Request, on_output: Callable[[bytes], None]) -> None:
        name = self._domain.name()
        self._port.open()
        self._stream = self._port.stream
        config = {"port": self.port, "user": request.user, "cwd": request.cwd,
                  "argv": request.argv, "env": request.env, "rows": request.rows,
                  "cols": request.cols}  # fmt: skip
        try:
            self._pid = self._agent.exec_start(
                "python3", ["-c", guest_source(RELAY_SOURCE), json.dumps(config)]
            )
        except AgentCommandError as exc:
            if "No such file" in exc.desc:
                raise SessionRefused(
                    "the guest has no python3: qgactl shell runs its pty relay with it",
                    hint="install python3 in the guest, or run commands with qgactl exec",
                    domain=name,
                ) from None
            raise
        threading.Thread(target=self._read, args=(on_output,), daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def send(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_PAYLOAD):
            chunk = data[start : start + MAX_PAYLOAD]
            self._send_frame(HEADER.pack(b"d", len(chunk)) + chunk)

    def resize(self, rows: int, cols: int) -> None:
        self._send_frame(HEADER.pack(b"w", WINSIZE.size) + WINSIZE.pack(rows, cols))

    def close(self) -> None:
        """Close the stream (the guest relay hangs up), unplug the port, stop the guard."""
        self._end(SessionLost("session closed"))  # no-op when it has ended already
        self._stream = None
        self._port.close()

    # -- threads ----------------------------------------------------------------------------

    def _send_frame(self, frame: bytes) -> None:
        import libvirt

        with self._send_lock:
            stream = self._stream
            if stream is None or self.outcome.done.is_set():
                return
            try:
                while frame:
                    frame = frame[stream.send(frame) :]
            except libvirt.libvirtError:
                self._end(SessionLost(f"the session's port on {self._domain.name()} closed"))

    def _read(self, on_output: Callable[[bytes], None]) -> None:
        """Frames from the guest until its exit frame or the stream's end."""
        import libvirt

        buffered = b""
        try:
            while not self.outcome.done.is_set():
                data = self._stream.recv(64 * 1024)
                if not isinstance(data, bytes) or not data:
                    break
                self._answered.set()
                frames, buffered = split_frames(buffered + data)
                for kind, payload in frames:
                    if kind == b"d":
                        on_output(payload)
                    elif kind == b"x" and len(payload) == STATUS.size:
                        self._end(status=STATUS.unpack(payload)[0])
                    elif kind == b"e":
                        text = payload.decode("utf-8", "replace")
                        self._end(SessionRefused(text, domain=self._domain.name()))
        except (libvirt.libvirtError, AttributeError):  # AttributeError: closed under us
            pass
        self._end(SessionLost(f"the session's port on {self._domain.name()} closed"))

    def _watch(self) -> None:
        """The relay's liveness, through the agent: the relay killed (with the agent, say)
        closes nothing the host could see on the port."""
        assert self._pid is not None
        deadline = time.monotonic() + START_DEADLINE
        while not self.outcome.done.wait(LIVENESS_PERIOD):
            if not self._answered.is_set() and time.monotonic() > deadline:
                self._end(SessionLost(
                    f"the shell's guest side on {self._domain.name()} did not answer within "
                    f"{START_DEADLINE:.0f} s", hint="is the guest overloaded? "
                    f"qgactl exec {self._domain.name()} -- uptime"))  # fmt: skip
                return
            try:
                exited = self._agent.exec_status(self._pid).exited
            except AgentCommandError:
                exited = True  # the agent no longer knows the process: it restarted
            except QgactlError:
                continue  # a slow or busy agent is not a lost session; the stream says more
            if exited and not self.outcome.done.wait(EXIT_GRACE):
                self._end(SessionLost(f"the shell's guest side on {self._domain.name()} ended"))

    def _end(self, error: QgactlError | None = None, status: int | None = None) -> None:
        with self._send_lock:
            if self.outcome.done.is_set():
                return
            self.outcome.status, self.outcome.error = status, error
            self.outcome.done.set()
