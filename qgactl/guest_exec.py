"""Run a command in the guest through the agent and get its output and status, at any size.

qemu-ga's own capture (guest-exec "capture-output") keeps a process's output in the agent and
hands it over in ONE guest-exec-status reply, up to 16 MiB a stream. Through libvirt a reply
over ~4 MiB fails and one over 10 MiB breaks the domain's agent (PROTOCOL.md, "Limits"), and
the status call reaps the process, so a lost reply loses the result. So on guests with a POSIX
shell (``spool`` mode) the output never passes through a status reply:

1. qgactl opens two spool files in a root-only directory of the guest (SPOOL_DIR), keeping a
   handle to each; stdin (-i) is written to a third.
2. guest-exec runs WRAPPER under /bin/sh: it points the command's stdout and stderr at the
   spool files, deletes their names (the handles keep the data), puts the command in a
   session of its own when the guest has setsid(1) (so a kill reaches its children), and
   execs it: the pid guest-exec returns is the command's own, and so are its exit code or
   signal. "not found" and "cannot execute" come out as 127 and 126, from sh or setsid.
3. guest-exec-status is polled with a backoff from 1 ms up to POLL_CAP; then the spool
   handles are read in chunks that fit the transport (guestfile.py) and closed.

Guests without /bin/sh (Windows: guest-get-osinfo, asked when a spool file can't be opened)
use the agent's capture (``capture`` mode): output is limited to 16 MiB a stream by qemu-ga
(GUEST_EXEC_MAX_OUTPUT), and stdin to what fits in one request.

A command that runs past ``timeout_run``, or that the caller cancels (a signal), is killed in
the guest: SIGTERM to its process group, SIGKILL after KILL_GRACE, then reaped. Nothing is
left behind: not the process, not a spool file, not an open handle.

No click, no printing: the caller gives sinks for stdout and stderr and a ``cancelled`` check.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Callable, NamedTuple

from qgactl import guestfile
from qgactl.errors import (
    AgentCommandError,
    AgentTimeout,
    ExitCode,
    InvalidUsage,
    ProtocolError,
    QgactlError,
)

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.guestfile import Sink
    from qgactl.models import ExecStatus

SPOOL_DIR = "/run/qgactl"  # made 0700 on first use; only root can create names in /run
POLL_FIRST = 0.001
POLL_CAP = 0.1  # ten status calls a second at most for a long-running command
KILL_GRACE = 2.0  # between SIGTERM and SIGKILL
TIMED_OUT = 124  # like timeout(1)
NOT_FOUND = 127
CANNOT_EXECUTE = 126
# Stdin in one guest-exec request: libvirt drops requests over ~256 KiB of base64.
CAPTURE_STDIN_LIMIT = 160 * 1024

CAPTURE_COMMANDS = ("guest-exec", "guest-exec-status")
SPOOL_COMMANDS = (
    *CAPTURE_COMMANDS,
    "guest-file-open",
    "guest-file-read",
    "guest-file-write",
    "guest-file-close",
)

# $1 stdout spool, $2 stderr spool, $3 stdin ("/dev/null" or a spool), $4 how many NAME=VALUE
# follow; then the command. "exec" keeps one pid from sh to the command.
WRAPPER = r"""exec >>"$1" 2>>"$2" <"$3"
case $3 in /dev/null) rm -f -- "$1" "$2" ;; *) rm -f -- "$1" "$2" "$3" ;; esac
n=$4; shift 4
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n - 1)); done
command -v setsid >/dev/null 2>&1 && exec setsid "$@"
exec "$@"
"""
# The group first (setsid made the command its leader), else the process alone.
POSIX_KILL = r"""kill -s "$1" -- "-$2" 2>/dev/null || kill -s "$1" -- "$2" 2>/dev/null; :"""


class ExecResult(NamedTuple):
    """How a guest command ended. ``status`` is the shell-style exit status qgactl exits
    with: the exit code, 128+N for a signal N, 124 when killed after ``timeout_run``."""

    pid: int
    exit_code: int | None
    signal: int | None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    cancelled_by: int | None = None  # the caller's signal that stopped it

    @property
    def status(self) -> int:
        if self.timed_out:
            return TIMED_OUT
        if self.cancelled_by is not None:
            return 128 + self.cancelled_by
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else int(ExitCode.EXEC_FAILED)


class CannotRun(QgactlError):
    """The guest could not start the command: not found (127) or not executable (126)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.exit_code = status  # type: ignore[assignment]


def is_windows(agent: Agent) -> bool:
    """Whether the guest is Windows (no /bin/sh), by guest-get-osinfo's id. An agent that
    can't say (guest-get-osinfo blocked, or older than 2.10) is taken for POSIX."""
    try:
        return agent.osinfo().id == "mswindows"
    except AgentCommandError:
        return False


def run(
    agent: Agent,
    argv: Sequence[str],
    *,
    stdout: Sink,
    stderr: Sink,
    stdin: IO[bytes] | None = None,
    env: Sequence[str] = (),
    shell: bool = False,
    timeout_run: float | None = None,
    cancelled: Callable[[], int | None] = lambda: None,
) -> ExecResult:
    """Run ``argv`` in the guest; its output goes to ``stdout`` and ``stderr``, byte for byte.

    ``stdin`` is sent to the command (read to its end first: the agent has no streaming);
    without it the command's stdin is empty. ``env`` adds NAME=VALUE pairs. ``shell`` runs
    ``argv`` joined by spaces through the guest's shell. ``cancelled`` is polled while the
    command runs; a signal number from it stops the command.

    The guest is taken for POSIX until the spool says otherwise: guest-get-osinfo is asked
    only when a spool file can't be opened (the first exec after a boot, or Windows), one
    agent call fewer on every other exec.
    """
    if not argv:
        raise InvalidUsage("no command given", hint="qgactl exec DOMAIN -- CMD [ARGS...]")

    def job(posix: bool) -> _Job:
        command = list(argv)
        if shell:
            command = [*(("/bin/sh", "-c") if posix else ("cmd.exe", "/c")), " ".join(argv)]
        return _Job(command, stdout, stderr, stdin, env, timeout_run, cancelled)

    try:
        return _Spooled(agent, posix=True).run(job(posix=True))
    except _NotPosix:
        agent.require(*CAPTURE_COMMANDS)
        return _Captured(agent, posix=False).run(job(posix=False))


class _NotPosix(Exception):
    """Raised by _Spooled before it has made anything: a Windows guest, capture instead."""


def run_captured(agent: Agent, argv: Sequence[str]) -> tuple[int, str]:
    """One of qgactl's own helper commands (mkdir, mv, stat) whose output is a few bytes:
    the agent's capture, no spool. Returns (status, stdout, or stderr if it failed)."""
    import io

    out, err = io.BytesIO(), io.BytesIO()
    result = _Captured(agent, posix=True).run(_Job(list(argv), out, err))
    text = (err if result.status else out).getvalue().decode(errors="replace").strip()
    return result.status, text


class _Job(NamedTuple):
    """One command to run, as run() was given it."""

    argv: list[str]
    stdout: Sink
    stderr: Sink
    stdin: IO[bytes] | None = None
    env: Sequence[str] = ()
    timeout_run: float | None = None
    cancelled: Callable[[], int | None] = lambda: None


class _Runner:
    """What both modes share: start, poll with a backoff, kill and reap."""

    def __init__(self, agent: Agent, posix: bool) -> None:
        self.agent = agent
        self.posix = posix

    def _start(self, path: str, args: list[str], **kwargs: object) -> int:
        try:
            return self.agent.exec_start(path, args, **kwargs)  # type: ignore[arg-type]
        except AgentCommandError as exc:
            raise _cannot_run(exc, path) from None

    def _wait(self, pid: int, job: _Job) -> tuple[ExecStatus | None, bool, int | None]:
        """Poll until the process exits: (its status, timed out?, cancelled by). A timeout or
        a cancel kills it first; the status is then the one of the killed process."""
        timeout_run, cancelled = job.timeout_run, job.cancelled
        deadline = None if timeout_run is None else time.monotonic() + timeout_run
        pause = POLL_FIRST
        while True:
            status = self._status(pid)
            if status.exited:
                return status, False, None
            signum = cancelled()
            timed_out = deadline is not None and time.monotonic() >= deadline
            if signum is not None or timed_out:
                return self._kill(pid), timed_out, signum
            time.sleep(
                pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic()))
            )
            pause = min(pause * 2, POLL_CAP)

    def _status(self, pid: int) -> ExecStatus:
        """guest-exec-status, retried once after a timeout: it is idempotent until it reports
        the exit. If the lost reply was the one with the exit, the agent has forgotten the
        process: that is an error, never a guess (the output is still in the spool files)."""
        try:
            return self.agent.exec_status(pid)
        except AgentTimeout:
            try:
                return self.agent.exec_status(pid)
            except AgentCommandError as exc:
                raise ProtocolError(
                    f"guest-exec-status: the reply with the exit status of pid {pid} was lost "
                    f"({exc.desc})",
                    hint="the agent was too slow to answer; a longer -t/--timeout helps",
                ) from None

    def _kill(self, pid: int) -> ExecStatus | None:
        """SIGTERM, KILL_GRACE, SIGKILL; returns the reaped status (None if never seen)."""
        for signame, grace in (("TERM", KILL_GRACE), ("KILL", KILL_GRACE * 5)):
            self._send_signal(signame, pid)
            give_up = time.monotonic() + grace
            while time.monotonic() < give_up:
                status = self.agent.exec_status(pid)
                if status.exited:
                    return status
                time.sleep(0.05)
        return None

    def _send_signal(self, signame: str, pid: int) -> None:
        if self.posix:
            argv = ["/bin/sh", "-c", POSIX_KILL, "qgactl-kill", signame, str(pid)]
        else:
            argv = ["taskkill.exe", "/F", "/T", "/PID", str(pid)]
        killer = self._start(argv[0], argv[1:], capture=True)
        give_up = time.monotonic() + KILL_GRACE
        while time.monotonic() < give_up:  # reap the killer too: the agent keeps its status
            if self.agent.exec_status(killer).exited:
                return
            time.sleep(0.01)


class _Spooled(_Runner):
    """POSIX guests: output through spool files, so no reply is ever larger than a chunk."""

    def run(self, job: _Job) -> ExecResult:
        try:
            self.agent.require(*SPOOL_COMMANDS)
        except AgentCommandError:
            if is_windows(self.agent):  # with its file commands blocked
                raise _NotPosix from None
            raise
        base = f"{SPOOL_DIR}/{os.urandom(16).hex()}"  # not secrets: it imports hmac (6 ms)
        handles: list[int] = []
        started = False  # from then on the wrapper has removed the spool files' names
        try:
            handles.append(self._open_spool(f"{base}.out"))
            handles.append(self.agent.file_open(f"{base}.err", "w+"))
            stdin_path = "/dev/null"
            if job.stdin is not None:
                stdin_path = f"{base}.in"
                with guestfile.opened(self.agent, stdin_path, "w") as handle:
                    guestfile.write_from(self.agent, handle, job.stdin)
            args = ["-c", WRAPPER, "qgactl", f"{base}.out", f"{base}.err", stdin_path]
            pid = self._start("/bin/sh", [*args, str(len(job.env)), *job.env, *job.argv])
            started = True
            status, timed_out, signum = self._wait(pid, job)
            if signum is None:  # a cancel wants out now; a timeout still shows what came
                guestfile.read_into(self.agent, handles[0], job.stdout)
                guestfile.read_into(self.agent, handles[1], job.stderr)
            return _result(pid, status, timed_out, signum)
        finally:
            for handle in handles:
                guestfile.close_quietly(self.agent, handle)
            if handles and not started:
                with contextlib.suppress(QgactlError):
                    run_captured(
                        self.agent, ["rm", "-f", f"{base}.out", f"{base}.err", f"{base}.in"]
                    )

    def _open_spool(self, path: str) -> int:
        """Open the first spool file; make SPOOL_DIR (root-only) the first time. A guest
        whose agent can't open it may be Windows (no /run): guest-get-osinfo tells."""
        try:
            return self.agent.file_open(path, "w+")
        except AgentCommandError as exc:
            if is_windows(self.agent):
                raise _NotPosix from None
            if "No such file or directory" not in exc.desc:
                raise
        status, output = run_captured(self.agent, ["mkdir", "-p", "-m", "700", SPOOL_DIR])
        if status:
            raise QgactlError(f"cannot make the spool directory {SPOOL_DIR} in the guest: {output}")
        return self.agent.file_open(path, "w+")


class _Captured(_Runner):
    """The agent's own capture: Windows guests, and qgactl's small helper commands."""

    def run(self, job: _Job) -> ExecResult:
        data = None
        if job.stdin is not None:
            data = job.stdin.read(CAPTURE_STDIN_LIMIT + 1)
            if len(data) > CAPTURE_STDIN_LIMIT:
                raise InvalidUsage(
                    f"stdin is limited to {CAPTURE_STDIN_LIMIT // 1024} KiB on this guest "
                    "(no /bin/sh: qgactl can't spool it)",
                    hint="copy the data in first with qgactl cp, then run the command on it",
                )
        argv, env = job.argv, list(job.env) or None
        pid = self._start(argv[0], argv[1:], env=env, input_data=data, capture=True)
        status, timed_out, signum = self._wait(pid, job)
        if status is not None and signum is None:
            job.stdout.write(status.out_data)
            job.stderr.write(status.err_data)
        return _result(pid, status, timed_out, signum)


def _result(pid: int, status: ExecStatus | None, timed_out: bool, signum: int | None) -> ExecResult:
    if status is None:
        return ExecResult(pid, None, None, timed_out=timed_out, cancelled_by=signum)
    return ExecResult(
        pid,
        status.exit_code,
        status.signal,
        status.out_truncated,
        status.err_truncated,
        timed_out,
        signum,
    )


def _cannot_run(exc: AgentCommandError, path: str) -> QgactlError:
    """guest-exec's refusal to start ``path`` (glib's spawn error) as 127 or 126."""
    if "No such file" in exc.desc:
        return CannotRun(f"{path}: not found in the guest ({exc.desc})", NOT_FOUND)
    if "ermission denied" in exc.desc or "Exec format" in exc.desc:
        return CannotRun(f"{path}: cannot execute in the guest ({exc.desc})", CANNOT_EXECUTE)
    return exc
