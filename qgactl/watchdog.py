"""The fsfreeze watchdog: a detached process that thaws a guest when qgactl can't.

qemu-ga never thaws by itself (PROTOCOL.md), so whatever freezes a guest must make sure that
something thaws it. qgactl thaws in a ``finally`` for everything it survives; this process
covers what it can't survive (SIGKILL, a crash, a script that exits between freeze and thaw):

- auto-thaw (``fsfreeze --freeze --auto-thaw N``): thaw N seconds after it was armed, even long
  after qgactl has exited. A state file (STATE_DIR/fsfreeze-<key>.json: pid, deadline, target)
  lets ``--thaw`` and the next freeze find it and cancel it.
- guard (``fsfreeze --run``): thaw as soon as the qgactl that started it is gone, however it went
  (``--parent``); that qgactl cancels it after its own thaw.

It runs as ``python -m qgactl.watchdog`` in a session of its own with stdio on /dev/null, so a
closed terminal or a Ctrl-C in the shell doesn't reach it. It reaches the agent exactly as its
qgactl did (the same --connect, --socket and --transport) and tells qgactl it is armed through
a pipe before qgactl freezes anything. cancel() kills a watchdog only after /proc/PID/cmdline
shows it is ours, for the same guest.

Also here: thaw_until_done(), the retrying thaw that qgactl and the watchdog share.
Not here: deciding when to freeze, printing (qgactl/commands/fs.py).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from qgactl.errors import AgentCommandError, InvalidUsage, NotFound, QgactlError

if TYPE_CHECKING:
    import argparse

    from qgactl.agent import Agent

READY = b"armed\n"
READY_TIMEOUT = 15.0  # a Python start on a loaded 2-core host; no freeze until it answers
WATCHDOG_RETRY_SECONDS = 600.0  # a watchdog keeps trying to thaw for this long
RETRY_PAUSE = 1.0
POLL = 0.1  # how often a guard looks for its parent: the thaw latency after a SIGKILL


# -- the retrying thaw ------------------------------------------------------------------------


def thaw_until_done(
    open_agent: Callable[[], Agent],
    *,
    give_up: float,
    on_retry: Callable[[QgactlError], None] | None = None,
) -> int:
    """Thaw on a fresh connection per try until the agent answers or ``give_up`` seconds pass.

    The moments that need a thaw most are those where the agent is busy (a freeze that timed
    out is still syncing) or libvirt is re-syncing after a timeout: one try is not enough.
    """
    deadline = time.monotonic() + give_up
    while True:
        try:
            agent = open_agent()
            try:
                return agent.fsfreeze_thaw()
            finally:
                agent.close()
        except (NotFound, InvalidUsage, AgentCommandError):
            raise  # no such guest, a usage error, or the agent's answer: it won't change
        except QgactlError as exc:
            if time.monotonic() + RETRY_PAUSE >= deadline:
                raise
            if on_retry:
                on_retry(exc)
            time.sleep(RETRY_PAUSE)


# -- how to reach the agent again -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The agent as qgactl reached it: DOMAIN or --socket, with the same global options."""

    domain: str | None
    socket: str | None
    connect: str | None
    transport: str
    timeout: float

    def argv(self) -> list[str]:
        args = ["--transport", self.transport, "--timeout", str(self.timeout)]
        if self.connect:
            args += ["--connect", self.connect]
        if self.socket:
            args += ["--socket", os.path.abspath(self.socket)]  # the watchdog runs in "/"
        if self.domain:
            args += ["--domain", self.domain]
        return args

    def open(self) -> Agent:
        """A fresh connection (and libvirt connection) to the agent."""
        from qgactl.connector import Connector

        connector = Connector(timeout=self.timeout, transport=self.transport)
        return connector.open(self.domain, socket=self.socket, uri=self.connect)


# -- state files ----------------------------------------------------------------------------


def state_dir() -> Path:
    """/run/qgactl as root; else the user's runtime dir, else a private folder in /tmp."""
    import tempfile  # here, not at the top: fsinfo & co. import this module too

    candidates = [Path("/run/qgactl")]
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "qgactl")
    candidates.append(Path(tempfile.gettempdir()) / f"qgactl-{os.getuid()}")
    for candidate in candidates:
        try:
            candidate.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK) and candidate.stat().st_uid == os.getuid():
            return candidate
    raise QgactlError("no writable folder for the auto-thaw state", hint="is /tmp writable?")


def state_file(key: str) -> Path:
    return state_dir() / f"fsfreeze-{key}.json"


@dataclass(frozen=True)
class Pending:
    """An armed auto-thaw watchdog, as its state file describes it."""

    pid: int
    deadline: float  # time.time()
    target: str

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.deadline - time.time())

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "seconds_left": round(self.seconds_left, 1)}


def pending(key: str) -> Pending | None:
    """The live auto-thaw watchdog for ``key``; a state file left by a dead one is removed."""
    path = state_file(key)
    try:
        state = json.loads(path.read_text())
        found = Pending(int(state["pid"]), float(state["deadline"]), str(state["target"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)  # unreadable: no watchdog can be found through it
        return None
    if not _is_our_watchdog(found.pid, key):
        path.unlink(missing_ok=True)
        return None
    return found


def cancel(key: str) -> Pending | None:
    """Stop the auto-thaw watchdog for ``key`` (if one is armed); returns what was cancelled."""
    found = pending(key)
    if found is None:
        return None
    try:
        os.kill(found.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    # Wait until it is gone, so that a thaw it had already started can't land after ours.
    give_up = time.monotonic() + 5
    while _is_our_watchdog(found.pid, key) and time.monotonic() < give_up:
        time.sleep(0.02)
    state_file(key).unlink(missing_ok=True)
    return found


def _is_our_watchdog(pid: int, key: str) -> bool:
    """PIDs get reused: check the command line, not just that the PID exists."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False  # gone (a zombie's cmdline is empty: also gone for our purpose)
    return b"qgactl.watchdog" in argv and key.encode() in argv


# -- starting one -----------------------------------------------------------------------------


def start(
    target: Target, *, seconds: float | None, key: str | None = None, guard: bool = False
) -> subprocess.Popen[bytes]:
    """Start a watchdog and return once it is armed (QgactlError if it can't be)."""
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "qgactl.watchdog", "--ready-fd", str(write_end)]
    argv += target.argv()
    if seconds is not None:
        argv += ["--seconds", str(seconds)]
    if key:
        argv += ["--key", key]
    if guard:
        argv += ["--parent", str(os.getpid())]
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no SIGINT/SIGHUP from our terminal
            pass_fds=(write_end,),
            cwd="/",
        )
    finally:
        os.close(write_end)  # ours: EOF on read_end then means the watchdog is gone
    try:
        _wait_armed(read_end, process)
    finally:
        os.close(read_end)
    return process


def _wait_armed(read_end: int, process: subprocess.Popen[bytes]) -> None:
    ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT)
    if ready and os.read(read_end, len(READY)) == READY:
        return
    process.kill()
    process.wait()
    raise QgactlError(
        "the thaw watchdog did not start, so nothing was frozen",
        hint=f"try: {sys.executable} -m qgactl.watchdog --help",
    )


# -- the watchdog process ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    # A session of its own already keeps the terminal's signals away; ignore them anyway so
    # that only cancel()'s SIGTERM (default action: exit, no thaw) stops a watchdog.
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    target = Target(args.domain, args.socket, args.connect, args.transport, args.timeout)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    if args.key:
        _write_state(args.key, args.seconds or 0.0, target)
    os.write(args.ready_fd, READY)
    os.close(args.ready_fd)
    try:
        _wait_for_trigger(deadline, args.parent)
        # A new libvirt connection per try (Target.open): libvirtd may restart while we wait.
        thaw_until_done(target.open, give_up=WATCHDOG_RETRY_SECONDS)
    except QgactlError:
        return 1  # nobody to tell (stdio is /dev/null): the exit status is for tests
    finally:
        if args.key:
            _remove_state(args.key)
    return 0


def _wait_for_trigger(deadline: float | None, parent: int | None) -> None:
    """Sleep until the deadline passes or the parent qgactl is gone (we get re-parented)."""
    while True:
        if parent is not None and os.getppid() != parent:
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        if parent is None:
            assert deadline is not None  # _parse() insists on one of them
            time.sleep(max(0.0, deadline - time.monotonic()))
        else:
            time.sleep(POLL)


def _write_state(key: str, seconds: float, target: Target) -> None:
    state = {
        "pid": os.getpid(),
        "deadline": time.time() + seconds,
        "target": target.domain or target.socket or "?",
    }
    path = state_file(key)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(state))
    partial.replace(path)  # readers never see half a file


def _remove_state(key: str) -> None:
    """Remove the state file if it is still ours (a newer watchdog may have replaced it)."""
    path = state_file(key)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m qgactl.watchdog",
        description="Thaw a guest's filesystems at a deadline or when the parent qgactl is "
        "gone. Started by `qgactl fsfreeze`; not meant to be run by hand.",
    )
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--domain")
    parser.add_argument("--socket")
    parser.add_argument("--connect")
    parser.add_argument("--transport", default="auto")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, help="thaw this long after starting")
    parser.add_argument("--parent", type=int, help="thaw as soon as this PID is not our parent")
    parser.add_argument("--key", help="record this watchdog in the state file of this key")
    args = parser.parse_args(argv)
    if args.seconds is None and args.parent is None:
        parser.error("give --seconds, --parent or both")
    return args


if __name__ == "__main__":
    sys.exit(main())
