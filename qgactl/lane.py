"""Lanes: a warm, persistent way into a guest with python3, beside its agent (as ssh's
ControlMaster and ControlPersist, with Mitogen's warm interpreter).

Why: through libvirt, guest-file-write moves ~1.7 MiB/s (the guest decodes base64 under TCG),
and every command through guest-exec that is a Python program starts the guest's python3 again
(~0.8 s under TCG). Ansible also makes a new connection, in a new worker process, per task.

A lane is a **master** process on this host, one per (libvirt URI, domain), started detached on
first use and listening on a unix socket in a private directory (``lanes_dir``). It plugs a
virtio-serial port of its own into the domain (portlink.py), starts lane_guest.py there with
python3 through guest-exec, and relays requests (put a file, get a file, run a command, run a
Python program in a fork of the warm interpreter) between its clients and the guest, each
request on a channel of its own (lane_guest.py documents the framing). Clients connect once per
request and speak the same frames with channel 0; the master answers the request's ``q`` with
``a`` once it is on its way to the guest (a client that never gets ``a`` may safely retry:
the master was ending). The compiled code the guest side keeps (lane_guest.py) is fetched
when the lane ends and handed to the next lane into the same domain (a file per domain UUID
and guest Python beside the socket).

How a lane ends, and what cleans up
    - idle for ``persist`` seconds (no request running): the master closes the stream and
      unplugs the port; the guest side reads the port's hangup and kills what it started.
    - the guest side stops answering (heartbeats stop: the guest rebooted, hangs, the process
      was killed): after LOST_AFTER the master ends the same way, and its clients read the end
      of their socket: LaneLost.
    - the master is killed: the port's guard (portlink.py) unplugs the port, libvirtd closes
      the stream, the guest side ends; the next client finds the socket dead and starts a new
      master.

Not here: Ansible (ansible/plugins/connection/agent.py uses this through qgactl.api).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Callable

from qgactl.errors import AgentTimeout, AgentUnavailable, LaneLost, LaneRefused, QgactlError
from qgactl.lane_guest import CHUNK, HEADER, FrameReader

PORT_PREFIX = "org.qgactl.lane."
GUEST_SOURCE = Path(__file__).with_name("lane_guest.py")
START_WAIT = 30.0  # the guest side's python3 start and imports, under TCG on a busy host
LOST_AFTER = 10.0  # no frame from the guest side (it beats every second): it is gone
CODE_MAX = 64 * 1024 * 1024  # a kept compiled-code cache larger than this is not sent back
POLL = 0.5


# -- where lanes live ---------------------------------------------------------------------------


def lanes_dir() -> Path:
    """A directory only this user can enter: $XDG_RUNTIME_DIR/qgactl/lanes, /run/qgactl/lanes
    for root, else ~/.cache/qgactl/lanes."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        base = Path(runtime) / "qgactl"
    elif os.geteuid() == 0:
        base = Path("/run/qgactl")
    else:
        base = Path.home() / ".cache" / "qgactl"
    folder = base / "lanes"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise LaneRefused(
            f"{folder} is not private to this user",
            hint=f"remove it, or make it yours with mode 0700 (chmod 700 {folder})",
        )
    return folder


def lane_key(uri: str, domain: str) -> str:
    return hashlib.sha256(f"{uri}\0{domain}".encode()).hexdigest()[:24]


# -- the client -----------------------------------------------------------------------------------


class Lane:
    """Requests to one guest's lane; its master is started on first use (``start``) and again
    after it went (idle, killed), as long as the guest can run one."""

    def __init__(self, domain: str, uri: str, *, persist: float, timeout: float) -> None:
        self.domain = domain
        self.uri = uri
        self.persist = persist
        self.timeout = timeout
        self.folder = lanes_dir()
        self.key = lane_key(uri, domain)
        self.path = self.folder / f"{self.key}.sock"

    def start(self) -> None:
        """Make sure a master runs: LaneRefused when the guest can't run a lane (no python3),
        remembered for ``persist`` seconds so that callers fall back to the agent cheaply."""
        if _alive(self.path):
            return
        refused = self.folder / f"{self.key}.refused"
        with _locked(self.folder / f"{self.key}.lock", self.timeout, self.domain):
            if _alive(self.path):  # another client started it while we waited
                return
            with contextlib.suppress(OSError):
                if time.time() - refused.stat().st_mtime < self.persist:
                    raise LaneRefused(refused.read_text(), domain=self.domain)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a dead master's
            _start_master(self, refused)

    def exec(
        self,
        argv: list[str],
        *,
        stdin: bytes | IO[bytes] | None = None,
        env: dict[str, str] | None = None,
        python: bool = False,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
    ) -> int:
        """Run ``argv`` in the guest (``python``: argv[0] is a python3 that reads a program on
        stdin, run in a fork of the warm interpreter when it is the same python3); the
        command's status, shell-style. Output goes to the callbacks."""
        spec = {"op": "exec", "argv": argv, "env": env or {}, "python": python}
        end = self._request(spec, stdin or b"", on_stdout, on_stderr)
        return int(end["status"])

    def put(self, path: str, source: bytes | IO[bytes], *, mode: int = 0o644) -> None:
        """``source`` into the guest file ``path``: written beside it, fsynced and renamed."""
        self._request({"op": "put", "path": path, "mode": mode}, source)

    def get(self, path: str, sink: Callable[[bytes], object]) -> None:
        """The guest file ``path`` to ``sink``, chunk by chunk."""
        self._request({"op": "get", "path": path}, None, sink)

    def _request(
        self,
        spec: dict[str, Any],
        source: bytes | IO[bytes] | None,
        on_out: Callable[[bytes], object] | None = None,
        on_err: Callable[[bytes], object] | None = None,
    ) -> dict[str, Any]:
        for attempt in range(2):  # a second time after a master that was ending
            self.start()
            try:
                conn = self._connect()
            except LaneLost:
                if attempt:
                    raise
                continue
            with conn:
                conn.sendall(_frame(b"q", json.dumps(spec).encode()))
                frames = _read_frames(conn)
                if next(frames, (b"", b""))[0] != b"a":
                    continue  # the master was ending: the request never reached the guest
                if source is not None:  # only now: a retry must find the source unread
                    threading.Thread(target=_send_input, args=(conn, source), daemon=True).start()
                for kind, payload in frames:
                    if kind == b"o" and on_out is not None:
                        on_out(payload)
                    elif kind == b"e" and on_err is not None:
                        on_err(payload)
                    elif kind == b"x":
                        end: dict[str, Any] = json.loads(payload)
                        if "error" in end:
                            raise _refusal(spec, end, self.domain)
                        return end
                break
        raise LaneLost(
            f"the lane into {self.domain} went away during {spec['op']}",
            hint="its guest side stopped (a reboot, a hang) or its master was killed; retry",
            domain=self.domain,
        )

    def stop(self) -> None:
        """End the lane now if it runs (its port unplugged, its guest side gone)."""
        with contextlib.suppress(LaneLost, OSError), self._connect() as conn:
            conn.sendall(_frame(b"q", json.dumps({"op": "stop"}).encode()))
            conn.recv(1)  # the master closes it as it ends

    def _connect(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self.timeout)
        try:
            conn.connect(str(self.path))
        except OSError as exc:
            conn.close()
            raise LaneLost(f"the lane into {self.domain} is gone ({exc.strerror})") from None
        conn.settimeout(None)  # the master closes it if the guest side goes
        return conn


def _frame(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, 0, len(payload)) + payload


def _send_input(conn: socket.socket, source: bytes | IO[bytes]) -> None:
    """The request's input, then its end (an empty ``i``); quietly stops if the lane closes
    (or the request ended and its caller closed the source: ValueError)."""
    with contextlib.suppress(OSError, ValueError):
        if isinstance(source, (bytes, bytearray)):
            for start in range(0, len(source), CHUNK):
                conn.sendall(_frame(b"i", source[start : start + CHUNK]))
        else:
            while chunk := source.read(CHUNK):
                conn.sendall(_frame(b"i", chunk))
        conn.sendall(_frame(b"i"))


def _read_frames(conn: socket.socket) -> Iterator[tuple[bytes, bytes]]:
    reader = FrameReader()
    while data := conn.recv(1024 * 1024):
        for kind, _channel, payload in reader.feed(data):
            yield kind, payload


def _refusal(spec: dict[str, Any], end: dict[str, Any], domain: str) -> QgactlError:
    from qgactl.errors import AgentCommandError

    return AgentCommandError(f"lane {spec['op']}", "GenericError", str(end["error"])).with_context(
        domain=domain
    )


def _alive(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


@contextlib.contextmanager
def _locked(path: Path, timeout: float, domain: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout + START_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AgentTimeout(
                        f"another lane into {domain} is still starting", domain=domain
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _start_master(lane: Lane, refused: Path) -> None:
    """Start the master, detached, and wait for its first line: "ok", or why not (JSON)."""
    domain, timeout = lane.domain, lane.timeout
    log = lane.path.with_suffix(".log")
    with log.open("wb") as stderr:
        master = subprocess.Popen(
            [sys.executable, "-m", "qgactl.lane", lane.uri, domain, str(lane.path),
             str(lane.persist), str(timeout)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            start_new_session=True,  # it outlives us, and no signal of our terminal reaches it
        )  # fmt: skip
    assert master.stdout is not None
    deadline = timeout * 2 + START_WAIT
    if select.select([master.stdout], [], [], deadline)[0]:
        line = master.stdout.readline().decode().strip()
    else:
        line = ""
    master.stdout.close()
    if line == "ok":
        return
    if not line:
        master.kill()  # ours, by its pid: it never said it was ready
        master.wait()
        raise AgentTimeout(
            f"the lane into {domain} did not start within {deadline:.0f} s (log: {log})",
            domain=domain,
        )
    master.wait()
    failure = json.loads(line)
    if failure["refused"]:
        refused.write_text(failure["message"])
        raise LaneRefused(failure["message"], domain=domain)
    raise AgentUnavailable(failure["message"], hint=failure.get("hint"), domain=domain)


# -- the master ---------------------------------------------------------------------------------


class Master:
    """Relays between clients on a unix socket and the guest side on a plugged port."""

    def __init__(self, port: Any, persist: float) -> None:
        self.port = port  # a PluggedPort
        self.persist = persist
        self.clients: dict[int, socket.socket] = {}  # channel -> its client
        self.started: dict[int, tuple[str, float]] = {}  # channel -> (op, when): the log
        self.next_channel = 1
        self.lock = threading.Lock()  # clients, next_channel and sends on the stream
        self.stoppers: list[socket.socket] = []  # clients waiting for a stop to finish
        self.ready = threading.Event()
        self.guest: dict[str, Any] = {}  # the guest side's ready frame: python, pid, magic
        self.ended = threading.Event()
        self.stream_gone = False
        self.last_beat = time.monotonic()
        self.last_use = time.monotonic()

    def send(self, kind: bytes, channel: int, payload: bytes) -> None:
        frame = HEADER.pack(kind, channel, len(payload)) + payload
        with self.lock:
            stream = self.port.stream
            if stream is None:
                raise OSError(errno.EPIPE, "the lane's port is closed")
            while frame:
                frame = frame[stream.send(frame) :]

    def read_guest(self) -> None:
        """Frames from the guest side to the client of their channel, until the stream ends."""
        reader = FrameReader()
        try:
            while True:
                data = self.port.stream.recv(1024 * 1024)
                if not isinstance(data, bytes) or not data:
                    break
                self.last_beat = time.monotonic()
                for kind, channel, payload in reader.feed(data):
                    if kind == b"r":
                        self.guest = json.loads(payload)
                        self.ready.set()
                    elif kind in b"oex":
                        self.to_client(kind, channel, payload)
        except Exception:  # libvirtError, or the stream closed under us
            pass
        self.stream_gone = True
        self.ended.set()

    def to_client(self, kind: bytes, channel: int, payload: bytes) -> None:
        with self.lock:
            client = self.clients.get(channel)
            if kind == b"x":
                self.clients.pop(channel, None)
                self.last_use = time.monotonic()
                op, since = self.started.pop(channel, ("?", self.last_use))
                # the log (the .log beside the socket) says what took the time, never argv
                print(f"{channel} {op} {self.last_use - since:.3f} s", file=sys.stderr, flush=True)
        if client is None:
            return
        try:
            client.sendall(HEADER.pack(kind, 0, len(payload)) + payload)
            if kind == b"x":
                client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve_client(self, client: socket.socket) -> None:
        """One request: its frames to the guest under a channel of its own; if the client goes
        before the request ended, ``k`` kills it in the guest."""
        channel = 0
        reader = FrameReader()
        try:
            while data := client.recv(1024 * 1024):
                for kind, _, payload in reader.feed(data):
                    if kind == b"q" and json.loads(payload).get("op") == "stop":
                        self.stoppers.append(client)  # open until the lane has ended
                        self.ended.set()  # the run loop ends the lane
                        return
                    if kind == b"q" and not channel:
                        with self.lock:
                            channel, self.next_channel = self.next_channel, self.next_channel + 1
                            self.clients[channel] = client
                            spec = json.loads(payload)
                            op = "python" if spec.get("python") else spec.get("op", "?")
                            self.started[channel] = (op, time.monotonic())
                        self.send(kind, channel, payload)
                        client.sendall(_frame(b"a"))  # the request is the guest's now
                    elif channel and kind == b"i":
                        self.send(kind, channel, payload)
        except (OSError, ValueError):  # the client went, or sent what is not a request
            pass
        with self.lock:
            unfinished = self.clients.pop(channel, None) is not None
            self.last_use = time.monotonic()
        if unfinished:
            with contextlib.suppress(OSError):
                self.send(b"k", channel, b"")
        client.close()

    def internal(self, spec: dict[str, Any], data: bytes | None, wait: float) -> bytes | None:
        """A request of the master's own (a socket pair stands for its client): its output, or
        None if it failed or took longer than ``wait`` (0: do not wait)."""
        ours, theirs = socket.socketpair()
        with self.lock:
            channel, self.next_channel = self.next_channel, self.next_channel + 1
            self.clients[channel] = theirs
            self.started[channel] = (spec["op"], time.monotonic())
        try:
            self.send(b"q", channel, json.dumps(spec).encode())
            if data is not None:
                for start in range(0, len(data), CHUNK):
                    self.send(b"i", channel, data[start : start + CHUNK])
                self.send(b"i", channel, b"")
            if not wait:
                return None
            ours.settimeout(wait)
            output = []
            for kind, payload in _read_frames(ours):
                if kind == b"o":
                    output.append(payload)
                    if len(output) * CHUNK > CODE_MAX:  # the guest's bytes: bounded
                        return None
                elif kind == b"x":
                    return None if "error" in json.loads(payload) else b"".join(output)
        except OSError:  # the lane ended, or the wait is over
            pass
        finally:
            ours.close()
        return None

    def busy(self) -> bool:
        with self.lock:
            return bool(self.clients)

    def lost(self) -> bool:
        """The guest side is gone (its stream ended, or it stopped beating)."""
        return self.stream_gone or time.monotonic() - self.last_beat > LOST_AFTER

    def run(self, listener: socket.socket) -> None:
        """Accept clients until idle for ``persist`` seconds, or the guest side is lost."""
        listener.settimeout(POLL)
        while not self.ended.is_set():
            now = time.monotonic()
            if now - self.last_beat > LOST_AFTER:
                break
            if not self.busy() and now - self.last_use > self.persist:
                break
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            client.settimeout(None)
            threading.Thread(target=self.serve_client, args=(client,), daemon=True).start()
        with self.lock:
            clients, self.clients = list(self.clients.values()), {}
        for client in clients:  # their requests are lost: they read the end of the socket
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


def master_main(uri: str, domain: str, path: str, persist: float, timeout: float) -> int:
    """``python -m qgactl.lane``: start the lane and serve it; the first line on stdout says
    "ok" or, as JSON, why not."""
    from qgactl.connector import Connector
    from qgactl.errors import AgentCommandError
    from qgactl.portlink import PluggedPort, guest_source

    report: dict[str, Any] = {}  # why the lane did not start, said once all is cleaned up

    def fail(message: str, hint: str | None = None, refused: bool = False) -> int:
        report.update(message=message, hint=hint, refused=refused)
        return 1

    signal.signal(signal.SIGTERM, lambda _signo, _frame: sys.exit(1))  # cleans up (finally)
    connector = Connector(timeout=timeout, transport="libvirt")
    port = None
    listener = None
    try:
        found = connector.host(uri).lookup(domain)
        agent = connector.open(domain, uri=uri)
        port = PluggedPort(found, uri, PORT_PREFIX)
        port.open()
        master = Master(port, persist)
        threading.Thread(target=master.read_guest, daemon=True).start()
        try:
            pid = agent.exec_start("python3", ["-c", guest_source(GUEST_SOURCE), port.name])
        except AgentCommandError as exc:
            if "No such file" in exc.desc:
                return fail(f"{domain} has no python3 for a lane", refused=True)
            raise
        deadline = time.monotonic() + START_WAIT
        while not master.ready.wait(1.0):
            if time.monotonic() > deadline or agent.exec_status(pid).exited:
                return fail(f"the lane's guest side in {domain} did not start", refused=True)
        agent.close()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _umask(0o077):
            listener.bind(path)
        listener.listen(64)
        master.last_beat = master.last_use = time.monotonic()
        print("ok", flush=True)
        sys.stdout.close()
        # The compiled code a previous lane into this guest kept (a file per domain UUID and
        # guest Python: a guest only ever gets back code it compiled itself).
        magic = str(master.guest.get("magic"))  # the guest's word: hex digits only in a path
        magic = magic if re.fullmatch(r"[0-9a-f]{1,16}", magic) else "unknown"
        kept = Path(path).with_name(f"{found.UUIDString()}-{magic}.code")
        with contextlib.suppress(OSError):
            if kept.stat().st_size <= CODE_MAX:
                master.internal({"op": "code_in"}, kept.read_bytes(), wait=0)
        master.run(listener)
        if not master.lost():
            _keep(kept, master.internal({"op": "code_out"}, None, wait=timeout))
        return 0
    except QgactlError as exc:
        return fail(exc.message, exc.hint)
    finally:
        if listener is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)  # first: a new client starts a new master, not this one
            listener.close()
        if port is not None:
            port.close()
        connector.close()
        if report:
            print(json.dumps(report), flush=True)


def _keep(path: Path, data: bytes | None) -> None:
    """Write ``data`` to ``path`` (private, whole or not at all)."""
    if not data or len(data) > CODE_MAX:
        return
    temp = path.with_suffix(".tmp")
    with contextlib.suppress(OSError):
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as sink:
            sink.write(data)
        os.replace(temp, path)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


if __name__ == "__main__":
    uri_arg, domain_arg, path_arg, persist_arg, timeout_arg = sys.argv[1:6]
    sys.exit(master_main(uri_arg, domain_arg, path_arg, float(persist_arg), float(timeout_arg)))
